"""Class maps: the teacher class behind each student class, for a teacher that predicts a
superset of the student's classes (ImageNet-22k -> 1k, ImageNet-1k -> a user's subset).

A map is given as (``model.teacher.class_map``):

- a list of teacher class indices, one per student class, or a text file of them (one a line);
- a list of teacher class labels, WordNet ids (``"n01440764"``) or, for an ImageNet-1k teacher,
  class names (``"goldfish"``, or the whole ``"goldfish, Carassius auratus"``; a name two
  classes share, such as ``"crane"``, is refused: give the WordNet id), or a text file of them:
  each is looked up in the teacher's label set, chosen by its class count (1000: ImageNet-1k;
  21841: ImageNet-22k; 21842: ImageNet-22k in Microsoft's order, the 1k classes first, as
  Swin's; 21843: Google's ImageNet-21k), from the synset lists timm ships;
- a named map: ``"imagenet-22k-ms->imagenet-1k"`` (and ``imagenet-22k``/``imagenet-21k-goog``
  for the other orders): an ImageNet-22k teacher teaching a 1000-class student. The 21841- and
  21843-class lists lack ImageNet-1k's teddy bear (n04399382), so those maps are refused naming
  it: map the other 999 classes by label instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

__all__ = ["NAMED_MAPS", "LABEL_SETS", "read_class_map", "resolve_class_map"]

# teacher class count -> timm's name of the label set
LABEL_SETS = {
    1000: "imagenet-1k",
    21841: "imagenet-22k",
    21842: "imagenet-22k-ms",
    21843: "imagenet-21k-goog",
}
# named map -> (the teacher's label set, the student's)
NAMED_MAPS = {
    "imagenet-22k-ms->imagenet-1k": ("imagenet-22k-ms", "imagenet-1k"),
    "imagenet-22k->imagenet-1k": ("imagenet-22k", "imagenet-1k"),
    "imagenet-21k-goog->imagenet-1k": ("imagenet-21k-goog", "imagenet-1k"),
}
WHERE = "model.teacher.class_map"


def read_class_map(class_map: Sequence[int | str] | str) -> list[int] | list[str] | str:
    """The map as written, made plain: a named map as its name; a file as its lines (indices as
    ints, labels as strings); a list as a list. What a teacher cache records of it."""
    if isinstance(class_map, str):
        if class_map in NAMED_MAPS:
            return class_map
        try:
            lines = Path(class_map).read_text(encoding="utf-8").split()
        except OSError as e:
            raise ValueError(
                f"{WHERE}={class_map!r}: expected a named map ({', '.join(NAMED_MAPS)}) or a "
                f"text file of teacher class indices or labels, one a line ({e.strerror or e})"
            ) from None
        return [int(v) for v in lines] if all(_is_int(v) for v in lines) else lines
    return list(class_map)


def resolve_class_map(class_map: Sequence[int | str] | str, teacher_classes: int) -> list[int]:
    """The teacher index of each student class, checked against the teacher's class count."""
    items = read_class_map(class_map)
    if isinstance(items, str):  # a named map
        teacher_set, student_set = NAMED_MAPS[items]
        if LABEL_SETS.get(teacher_classes) != teacher_set:
            raise ValueError(
                f"{WHERE}={items!r} is for a teacher of {teacher_set} "
                f"({_count(teacher_set)} classes), but the teacher predicts {teacher_classes}"
            )
        items = list(_labels(student_set)[0])
    if not items:
        raise ValueError(f"{WHERE}: empty; expected one teacher class per student class")
    if all(isinstance(i, str) for i in items):
        return [_label_index(str(label), teacher_classes) for label in items]
    if not all(isinstance(i, int) and 0 <= i < teacher_classes for i in items):
        raise ValueError(
            f"{WHERE}: expected teacher class indices in [0, {teacher_classes}) or labels, one "
            f"per student class; got {list(items)[:8]}..."
        )
    return [int(i) for i in items]


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _count(label_set: str) -> int:
    return next(n for n, s in LABEL_SETS.items() if s == label_set)


@lru_cache(maxsize=4)
def _labels(label_set: str) -> tuple[tuple[str, ...], dict[str, int]]:
    """``(WordNet ids in class order, label -> index)`` of a label set (timm's synset lists;
    ImageNet-1k also by ssld-zoo's class names)."""
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        raise ImportError(
            f"{WHERE} by labels or by name reads the synset lists timm ships: pip install timm"
        ) from None
    info = ImageNetInfo(label_set)
    wnids = tuple(info.label_names())
    index = {w: i for i, w in enumerate(wnids)}
    if label_set == "imagenet-1k":
        from ssld_zoo.api import class_names

        names = class_names()  # "goldfish, Carassius auratus", or also "goldfish"
        for i, name in enumerate(names):
            for key in {name, name.split(",")[0]}:
                index[key] = -1 if key in index else i  # -1: a name of several classes
    return wnids, index


def _label_index(label: str, teacher_classes: int) -> int:
    label_set = LABEL_SETS.get(teacher_classes)
    if label_set is None:
        raise ValueError(
            f"{WHERE}: labels such as {label!r} need a teacher of a known label set "
            f"({', '.join(f'{n} classes: {s}' for n, s in LABEL_SETS.items())}); this teacher "
            f"predicts {teacher_classes}: give indices instead"
        )
    index = _labels(label_set)[1]
    if label not in index:
        raise ValueError(f"{WHERE}: {label!r} is not a class of {label_set}")
    if index[label] < 0:
        raise ValueError(
            f"{WHERE}: {label!r} names several classes of {label_set}: give its WordNet id"
        )
    return index[label]
