"""Training and evaluation images for distillation and transfer: labeled + unlabeled in one stream.

* Labeled roots are ImageFolder trees (``root/<class>/<image>``); unlabeled roots are a folder of
  images (searched recursively) or a list file (one image path per line, tab-separated extra
  columns allowed; relative paths are relative to the list file; ``ssld-zoo mine`` writes such
  files). Either kind may also be WebDataset-style tar shards (a ``.tar``, a brace pattern
  ``train-{000000..000099}.tar`` or a folder of ``.tar``; labels from ``key.cls``): see
  :mod:`ssld_zoo.data.shards`. SSLD's loss ignores labels; unlabeled samples carry label -1.
* The samples are held in a :class:`~ssld_zoo.data.samples.SampleTable` (50-70 bytes a
  sample, not a list of tuples), so an ImageNet-22k-sized index fits every worker.
* Each sample's random augmentation (crop, flip, AutoAugment...) is drawn from a generator seeded by
  ``(seed, epoch, index)``, so the same crop can be recomputed later (e.g. to cache teacher outputs
  per crop) and a resumed run sees exactly the crops an uninterrupted one would. The sampler below
  hands ``(epoch, index)`` keys to the dataset for that reason: it works with persistent workers.
* An unreadable image is skipped (the batch is one smaller) with a warning naming it;
  ``collate_images`` counts skips so the training log shows how many there were.
* Images leave the workers as uint8 tensors; normalisation happens on the device (see
  :class:`~ssld_zoo.engine.preprocessor.UInt8Preprocessor`), which is 4x less to copy.
* Every class here is registered in mmengine's registries under its own name, so that a recipe
  writes ``dict(type="ImageDataset", ...)``, ``dict(type="TrainViewTransform", ...)``,
  ``dict(type="EpochIndexSampler")``, ``collate_fn=dict(type="collate_images")``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, TRANSFORMS
from torch.utils.data import Dataset

from ssld_zoo.data import shards
from ssld_zoo.data.samples import SampleTable
from ssld_zoo.data.walk import IMG_EXTENSIONS, FolderWalk, walk_images

__all__ = [
    "IMG_EXTENSIONS",
    "scan_image_folder",
    "scan_unlabeled",
    "scan_labeled_shards",
    "ImageDataset",
    "TrainViewTransform",
    "ResizeCenterCrop",
    "build_train_transform",
    "collate_images",
    "sample_seed",
    "seeded",
    "read_image",
    "read_pixels",
    "EpochIndexSampler",
]

log = logging.getLogger("ssld_zoo.data")

_INTERP = ("nearest", "bilinear", "bicubic")


def scan_image_folder(
    root: str | os.PathLike, role: str = "labeled data root", allow_empty_classes: bool = False
) -> tuple[list[str], list[tuple[str, str]]]:
    """``(class names sorted, [(path, class name)])`` of an ImageFolder tree, walked by
    :class:`~ssld_zoo.data.walk.FolderWalk` (no loops, each real image once). A class folder
    without images is refused, naming it, as torchvision's ImageFolder does; with
    ``allow_empty_classes`` it stays a class (the index order holds) with a warning.
    ``role`` names the root in messages ("labeled data root", "val root")."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{role} {root} does not exist or is not a folder (expected root/<class>/<image> files)"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    walk = FolderWalk()  # one walk for all classes: an image linked into two classes counts once
    samples = []
    for c in classes:
        found = walk.images(root / c)
        if not found:
            if not allow_empty_classes:
                raise FileNotFoundError(
                    f"{role} {root}: class folder {root / c} holds no images (extensions "
                    f"{', '.join(IMG_EXTENSIONS)}); remove it, fill it, or keep it empty with "
                    f"the dataset's allow_empty_classes=True"
                )
            log.warning(
                "%s %s: class folder %s holds no images (kept as an empty class)",
                role,
                root,
                root / c,
            )
        samples += [(p, c) for p in found]
    walk.report(f"{role} {root}")
    if not samples:
        raise FileNotFoundError(
            f"{role} {root} holds no images in class folders "
            f"(expected root/<class>/<image>, extensions {IMG_EXTENSIONS})"
        )
    return classes, samples


def scan_unlabeled(root: str | os.PathLike) -> list[str]:
    """Image paths of an unlabeled root: a folder (recursive, sorted, each real image once:
    see :class:`~ssld_zoo.data.walk.FolderWalk`), a list file, or tar shards (each image
    named ``<tar>#<member>``, see :mod:`~ssld_zoo.data.shards`)."""
    table = SampleTable()
    _add_unlabeled(table, root)
    return [p for p, _ in table]


def _list_file_paths(root: Path) -> Iterator[str]:
    """The paths a list file names, relative ones anchored at its folder (a generator: a
    14M-line list never exists as a Python list)."""
    parent = root.parent
    # surrogateescape: a name that is not UTF-8 comes back as the bytes the OS gave
    with open(root, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = line.split("\t", 1)[0].strip()  # tab-separated columns; paths may hold spaces
            if "//" in p or "/." in p or p.startswith("./") or p.endswith("/"):
                p = str(Path(p))  # Path's spelling ("./a" -> "a"), as the paths were always kept
            if not os.path.isabs(p) and str(parent) != ".":
                p = f"{parent}{os.sep}{p}"
            yield p


def _add_list_file(table: SampleTable, root: Path, chunk: int = 1 << 26) -> None:
    """A list file's paths into ``table``, 64 MiB at a time with numpy (a 14M-line list in
    seconds, never as Python strings); a file with a line that needs more than splitting
    (a carriage return, spaces to strip, a path pathlib would respell) is read line by line
    by :func:`_list_file_paths`, which defines the result."""
    parent = "" if str(root.parent) == "." else f"{root.parent}{os.sep}"
    before = len(table)
    with open(root, "rb") as f:
        rest = b""
        while True:
            block = f.read(chunk)
            data = rest + block
            if not block:
                rest = b""
            else:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            if data:
                parsed = _split_list_lines(data)
                if parsed is None:
                    table.truncate(before)
                    table.extend((p, -1) for p in _list_file_paths(root))
                    return
                absolute, names, ends = parsed
                table.extend_buffer(["", parent], (~absolute).astype(np.int32), names, ends)
            if not block and not rest:
                break


def _split_list_lines(data: bytes) -> tuple[np.ndarray, bytes, np.ndarray] | None:
    """``(absolute?, path bytes concatenated, ends)`` of the path column of each line of
    ``data`` (blank lines and ``#`` comments dropped), or None when a line needs the line
    reader (see :func:`_add_list_file`)."""
    if b"\r" in data or b"\x0b" in data or b"\x0c" in data:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(arr)]])
    tabs = np.flatnonzero(arr == 9)
    if len(tabs):
        at = np.searchsorted(tabs, starts)
        tab = np.where(at < len(tabs), tabs[np.minimum(at, len(tabs) - 1)], len(arr))
        ends = np.minimum(ends, tab)
    keep = (ends > starts) | (ends < np.concatenate([nl, [len(arr)]]))  # blank lines dropped
    starts, ends = starts[keep], ends[keep]
    first = arr[np.minimum(starts, len(arr) - 1)] if len(arr) else starts
    keep = first != ord("#")
    starts, ends, first = starts[keep], ends[keep], first[keep]
    if not len(starts):
        return np.zeros(0, bool), b"", np.zeros(0, np.int64)
    last = arr[ends - 1]
    plain = lambda b: (b > 32) & (b < 127)  # noqa: E731 - printable ASCII, no space
    if not (np.all(ends > starts) and np.all(plain(first)) and np.all(plain(last))):
        return None
    # what pathlib would respell: "//", "/.", a leading "./", a trailing "/"
    slash = np.flatnonzero((arr[:-1] == 47) & ((arr[1:] == 47) | (arr[1:] == 46)))
    if len(slash):
        row = np.searchsorted(starts, slash, side="right") - 1
        inside = (row >= 0) & (slash + 1 < ends[np.maximum(row, 0)])
        if inside.any():
            return None
    if np.any(last == 47) or np.any(
        (first == 46) & (arr[np.minimum(starts + 1, len(arr) - 1)] == 47)
    ):
        return None
    mark = np.zeros(len(arr) + 1, dtype=np.int8)
    mark[starts] = 1  # a line's path starts after the previous line's end: never the same byte
    mark[ends] = -1
    names = arr[np.cumsum(mark[:-1], dtype=np.int8).astype(bool)].tobytes()
    return first == 47, names, np.cumsum(ends - starts)


def _add_unlabeled(table: SampleTable, root: str | os.PathLike) -> None:
    """Append an unlabeled root's images to ``table`` with label -1."""
    before = len(table)
    if shards.is_shard_source(root):
        for tar in shards.shard_files(root):
            idx = shards.shard_index(tar)
            labels = np.full(len(idx), -1, np.int32)
            table.extend_shard(tar, idx.names, idx.ends, labels, idx.offsets, idx.sizes)
        if len(table) == before:
            raise FileNotFoundError(f"unlabeled tar shards {os.fspath(root)} hold no images")
        return
    root = Path(root)
    if root.is_file():
        _add_list_file(table, root)
        if len(table) == before:
            raise ValueError(f"unlabeled list file {root} names no images")
        return
    if not root.is_dir():
        raise FileNotFoundError(
            f"unlabeled data root {root} does not exist (expected a folder of images, a list "
            f"file with one image path per line, or tar shards)"
        )
    paths = walk_images(root, "unlabeled data root")
    if not paths:
        raise FileNotFoundError(f"unlabeled data root {root} holds no images")
    table.extend((p, -1) for p in paths)


def scan_labeled_shards(
    source: str | os.PathLike, classes: Sequence[str] | None = None
) -> tuple[list[str] | None, list[shards.ShardIndex]]:
    """``(class names or None, shard indices)`` of labeled tar shards: every image needs a
    ``key.cls`` (its class index); names come from ``classes`` or the shards' ``classes.txt``."""
    names = list(classes) if classes is not None else shards.read_class_names(source)
    found = []
    for tar in shards.shard_files(source):
        idx = shards.shard_index(tar)
        unlabeled = np.flatnonzero(idx.labels < 0)
        if len(unlabeled):
            raise ValueError(
                f"labeled tar shard {tar}: {idx.name(int(unlabeled[0]))} has no .cls member "
                f"(and {len(unlabeled) - 1} more): a labeled shard needs key.cls beside key.jpg"
            )
        if names is not None and len(idx) and int(idx.labels.max()) >= len(names):
            raise ValueError(
                f"labeled tar shard {tar}: class index {int(idx.labels.max())} in a .cls member, "
                f"but there are {len(names)} class names"
            )
        found.append(idx)
    if not any(len(i) for i in found):
        raise FileNotFoundError(f"labeled tar shards {os.fspath(source)} hold no images")
    return names, found


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` (well mixed, 63 bits); another
    ``stream`` gives independent seeds for other uses (e.g. per-epoch model randomness)."""
    state = np.random.SeedSequence([seed, epoch, index, stream]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _modes(name: str):
    from torchvision.transforms import v2 as T

    if name not in _INTERP:
        raise ValueError(f"interpolation {name!r}: expected one of {_INTERP}")
    return getattr(T.InterpolationMode, name.upper())


@TRANSFORMS.register_module()
class TrainViewTransform:
    """The training augmentation as one object whose random draws can be recorded and replayed.

    PIL image -> uint8 CHW tensor: optional short-side resize, RandomResizedCrop, horizontal
    flip, optional AutoAugment/RandAugment. It draws from torch's global CPU generator in the
    same order as the torchvision ``Compose`` it replaces (crop, flip, auto-augment), so seeding
    that generator fixes the view. :meth:`view` also returns the crop box (normalised to the
    image it was cut from) and the flip: the teacher cache stores them with each view and
    checks them when it replays the view from its seed. A decoded uint8 CHW tensor (what
    :func:`read_pixels` gives the loaders) goes in as well as a PIL image.
    """

    def __init__(
        self,
        input_size: int = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        auto_augment: str | None = None,
        interpolation: str = "bilinear",
        resize: int | None = None,
    ):
        from torchvision.transforms import v2 as T

        mode = _modes(interpolation)
        self.settings = {
            "input_size": int(input_size),
            "scale": [float(v) for v in scale],
            "ratio": [float(v) for v in ratio],
            "hflip": float(hflip),
            "auto_augment": auto_augment,
            "interpolation": interpolation,
            "resize": resize,
        }
        self.resize = T.Resize(resize, interpolation=mode, antialias=True) if resize else None
        self.crop = T.RandomResizedCrop(
            input_size, scale=tuple(scale), ratio=tuple(ratio), interpolation=mode, antialias=True
        )
        self.hflip = float(hflip)
        self.auto_augment = None
        if auto_augment:
            if auto_augment == "imagenet":
                self.auto_augment = T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, interpolation=mode)
            elif auto_augment.startswith("rand-"):
                kw = {p[0]: int(p[1:]) for p in auto_augment.split("-")[1:]}
                self.auto_augment = T.RandAugment(
                    num_ops=kw.get("n", 2), magnitude=kw.get("m", 9), interpolation=mode
                )
            else:
                raise ValueError(
                    f"auto_augment {auto_augment!r}: expected None, 'imagenet' or 'rand-m<M>-n<N>'"
                )

    def view(self, img) -> tuple[torch.Tensor, tuple[float, float, float, float], bool]:
        """``(uint8 tensor, (top, left, height, width) / image size, flipped)`` of one view."""
        from torchvision.transforms.v2 import functional as TF

        if self.resize is not None:
            img = self.resize(img)
        height, width = TF.get_size(img)  # a PIL image or a decoded tensor
        params = self.crop.make_params([img])
        box = (
            params["top"] / height,
            params["left"] / width,
            params["height"] / height,
            params["width"] / width,
        )
        img = self.crop.transform(img, params)
        flip = bool(self.hflip) and bool(torch.rand(1) < self.hflip)
        if flip:
            img = TF.horizontal_flip(img)
        if self.auto_augment is not None:
            img = self.auto_augment(img)
        return (img if isinstance(img, torch.Tensor) else TF.pil_to_tensor(img)), box, flip

    def __call__(self, img) -> torch.Tensor:
        return self.view(img)[0]

    def __repr__(self) -> str:
        return f"TrainViewTransform({', '.join(f'{k}={v!r}' for k, v in self.settings.items())})"


@TRANSFORMS.register_module()
class ResizeCenterCrop:
    """PIL image -> uint8 CHW tensor: short side to ``resize``, centre crop ``input_size``
    (the evaluation transform; normalisation is each model's own, on the device). A uint8
    CHW tensor goes in as well."""

    def __init__(self, input_size: int = 224, resize: int = 256, interpolation: str = "bilinear"):
        from ssld_zoo.registry import EvalTransform

        self.settings = {
            "input_size": int(input_size),
            "resize": int(resize),
            "interpolation": interpolation,
        }
        self._transform = EvalTransform(**self.settings).resize_crop()

    def __call__(self, img) -> torch.Tensor:
        return self._transform(img)

    def __repr__(self) -> str:
        return f"ResizeCenterCrop({', '.join(f'{k}={v!r}' for k, v in self.settings.items())})"


def build_train_transform(
    input_size: int = 224,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    auto_augment: str | None = None,
    interpolation: str = "bilinear",
    resize: int | None = None,
) -> TrainViewTransform:
    """PIL image or uint8 CHW tensor -> uint8 CHW tensor: RandomResizedCrop, flip, optional
    AutoAugment/RandAugment (a :class:`TrainViewTransform`).

    ``auto_augment``: None, ``"imagenet"`` (AutoAugment's ImageNet policy, as ResNet50_vd_ssld_v2)
    or ``"rand-m{M}-n{N}"`` (RandAugment, e.g. ``"rand-m7-n2"`` as PP-HGNetV2's SSLD recipe).
    ``resize``: first resize the short side to this (small images such as the digits demo).
    """
    return TrainViewTransform(input_size, scale, ratio, hflip, auto_augment, interpolation, resize)


def seeded(seed: int):
    """A context in which torch's global CPU generator is seeded with ``seed``; the caller's
    random state is restored after (torchvision's random transforms draw from that generator).
    Only the CPU generator: torch.manual_seed also queues a CUDA seed, and on a CUDA build
    without an initialised GPU that records a stack trace, half the cost of a 32 px sample."""
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield

    return _ctx()


def read_image(path: str, where: tuple[int, int] | None = None):
    """An RGB PIL image, or None when the file cannot be decoded (logged, naming the file).

    Decoded by :func:`ssld_zoo.preprocess.decode_image`, as ``ssld-zoo predict`` does: 16-bit
    files are scaled to 8 bits, and an image over Pillow's pixel limit is refused (skipped).
    A tar member ``<tar>#<member>`` is read at ``where`` (its offset and size) when given."""
    from ssld_zoo.preprocess import decode_image

    try:
        if shards.split_member(path) is None:
            return decode_image(path)
        return decode_image(path, data=shards.read_bytes(path, where))
    except Exception as e:  # any decoding failure: skip the sample, never crash the run
        log.warning("skipping unreadable image: %s", e)
        return None


def read_pixels(path: str, where: tuple[int, int] | None = None) -> torch.Tensor | None:
    """The training loaders' reader: an RGB uint8 (3, H, W) tensor, or None when the file
    cannot be decoded (logged, naming the file). JPEGs decode through torchvision
    (:mod:`ssld_zoo.data.decode`: 1.3x PIL per core), the rest as :func:`read_image`. A tar
    member ``<tar>#<member>`` is read at ``where`` (its offset and size) when given."""
    from ssld_zoo.data.decode import decode_tensor

    try:
        if shards.split_member(path) is None:
            return decode_tensor(path)
        return decode_tensor(path, data=shards.read_bytes(path, where))
    except Exception as e:  # any decoding failure: skip the sample, never crash the run
        log.warning("skipping unreadable image: %s", e)
        return None


@DATASETS.register_module()
class ImageDataset(Dataset):
    """Labeled and unlabeled images in one indexable stream.

    Args:
        labeled_roots: ImageFolder roots; their class folders must agree (union, sorted).
        unlabeled_roots: folders of images or list files; label -1.
        transform: uint8 CHW tensor (the decoded image, see :func:`read_pixels`) -> tensor,
            or its config (``dict(type="TrainViewTransform",
            ...)``, ``dict(type="ResizeCenterCrop", ...)``).
        seed: base of the per-sample augmentation seeds.
        classes: fix the class order (else the sorted union of the labeled roots' folders).
        max_per_class: keep at most this many labeled images per class, drawn with ``seed``
            (a quick transfer run on a subset).
        allow_empty_classes: keep a class folder without images (a warning) instead of
            refusing it.
        role: what the labeled roots are, in messages (``"val root"`` for a validation set).

    ``dataset[(epoch, i)]`` draws sample ``i``'s augmentation from ``(seed, epoch, i)``;
    ``dataset[i]`` uses epoch 0. Returns ``(image, label, i)``, or None for an unreadable file.
    """

    def __init__(
        self,
        labeled_roots: Sequence[str] = (),
        unlabeled_roots: Sequence[str] = (),
        transform: Callable | dict | None = None,
        seed: int = 0,
        classes: Sequence[str] | None = None,
        max_per_class: int | None = None,
        allow_empty_classes: bool = False,
        role: str = "labeled data root",
    ):
        folders = [r for r in labeled_roots if not shards.is_shard_source(r)]
        scanned = {r: scan_image_folder(r, role, allow_empty_classes) for r in folders}
        tars = {r: scan_labeled_shards(r, classes) for r in labeled_roots if r not in scanned}
        self.classes = _class_names(classes, scanned, tars)
        index = {c: i for i, c in enumerate(self.classes)}
        self.samples = SampleTable()
        for root in labeled_roots:
            if root in tars:
                for idx in tars[root][1]:
                    self.samples.extend_shard(
                        idx.tar, idx.names, idx.ends, idx.labels, idx.offsets, idx.sizes
                    )
                continue
            for path, c in scanned[root][1]:
                if c not in index:
                    raise ValueError(
                        f"class folder {c!r} of {root} is not among the "
                        f"{len(self.classes)} classes of this run"
                    )
                self.samples.append(path, index[c])
        if max_per_class is not None:
            self.samples = _per_class(self.samples, int(max_per_class), int(seed))
        self.num_labeled = len(self.samples)
        for root in unlabeled_roots:
            _add_unlabeled(self.samples, root)
        if not self.samples:
            raise ValueError("no images: give at least one labeled or unlabeled root")
        self.transform = TRANSFORMS.build(transform) if isinstance(transform, dict) else transform
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def metainfo(self) -> dict:
        """mmengine's dataset meta (class names), shown by its evaluator and visualizer."""
        return {"classes": tuple(self.classes)}

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int] | None:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path, label = self.samples[index]
        img = read_pixels(path, self.samples.location(index))
        if img is None:
            return None
        if self.transform is None:
            return img, label, index
        with seeded(sample_seed(self.seed, epoch, index)):
            x = self.transform(img)
        return x, label, index


def _class_names(
    classes: Sequence[str] | None,
    folders: dict[Any, tuple[list[str], Any]],
    tars: dict[Any, tuple[list[str] | None, Any]],
) -> list[str]:
    """The run's class order: ``classes`` if given, else the sorted union of the class
    folders; labeled tar shards carry class indices, so they need names that agree."""
    if classes is not None:
        return list(classes)
    names = sorted({c for cs, _ in folders.values() for c in cs})
    for root, (shard_names, found) in tars.items():
        if shard_names is None:
            if folders:
                raise ValueError(
                    f"labeled tar shards {root}: their .cls indices need class names to be "
                    f"used beside class folders: write classes.txt beside the shards or set "
                    f"the dataset's classes"
                )
            top = max(int(i.labels.max()) for i in found if len(i))
            shard_names = [str(i) for i in range(top + 1)]
        if names and shard_names != names:
            raise ValueError(
                f"labeled tar shards {root}: their {len(shard_names)} classes differ from the "
                f"{len(names)} of the other labeled roots"
            )
        names = shard_names
    return names


def _per_class(samples: SampleTable, cap: int, seed: int) -> SampleTable:
    """At most ``cap`` samples of each class, drawn with ``seed``, in their original order."""
    import random

    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(samples.labels.tolist()):
        by_class.setdefault(y, []).append(i)
    keep = []
    for idx in by_class.values():
        keep += rng.sample(idx, min(cap, len(idx)))
    return samples.select(sorted(keep))


@FUNCTIONS.register_module()
def collate_images(batch: list[Any]) -> dict[str, Any]:
    """Stack the readable samples: ``inputs`` uint8 (N,C,H,W), ``labels`` (-1 = unlabeled),
    ``indices`` (dataset indices) and ``skipped`` (unreadable files in this batch)."""
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return {
            "inputs": torch.zeros(0, 3, 1, 1, dtype=torch.uint8),
            "labels": torch.zeros(0, dtype=torch.long),
            "indices": torch.zeros(0, dtype=torch.long),
            "skipped": skipped,
        }
    return {
        "inputs": torch.stack([b[0] for b in good]),
        "labels": torch.tensor([b[1] for b in good], dtype=torch.long),
        "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
        "skipped": skipped,
    }


@DATA_SAMPLERS.register_module()
class EpochIndexSampler(DefaultSampler):
    """mmengine's DefaultSampler (same shuffling and sharding across ranks) yielding
    ``(epoch, index)`` keys, so that each sample's augmentation depends on both.

    The same indices as DefaultSampler (same permutation, padding and rank slice), kept in
    an int64 array instead of its Python list: 8 bytes a sample per epoch, not about 36."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, n = self.epoch, len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            indices = torch.randperm(n, generator=g)
        else:
            indices = torch.arange(n)
        if self.round_up:
            indices = indices.repeat(self.total_size // n + 1)[: self.total_size]
        mine = indices[self.rank : self.total_size : self.world_size].numpy()
        return ((epoch, int(i)) for i in mine)
