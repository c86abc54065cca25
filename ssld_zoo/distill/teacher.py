"""The fast online teacher: a frozen model made cheap to run on every training batch.

Each lever is measured in ``benchmarks/teacher_speed.py``; the defaults follow those figures:

- **BatchNorm folded** into the convolution before it (exact up to fp32 rounding): one pass
  over memory per layer instead of two. Only for an eval-mode teacher (``bn_mode='eval'``):
  batch statistics cannot be folded.
- **torch.inference_mode**: no autograd bookkeeping, no version counters.
- **channels_last**: the layout oneDNN and cuDNN run convolutions fastest in.
- **precision**: ``bf16``/``fp16`` autocast (``auto``: bf16 on a GPU that supports it, fp32
  elsewhere); the logits are cast to fp32 before anyone takes a softmax of them.
- **compile**: ``torch.compile`` of the teacher alone (off by default: it costs a warm-up and a
  C++/Triton toolchain).
"""

from __future__ import annotations

import contextlib
import copy
import logging

import torch
import torch.nn as nn

from ssld_zoo.deploy.fuse import fold_batchnorm

__all__ = ["OnlineTeacher", "PRECISIONS", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision ``precision`` means on ``device`` (``auto``: bf16 on a GPU that has it;
    fp32 on CPU, where bf16 autocast was slower in ``benchmarks/teacher_speed.py``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


class OnlineTeacher(nn.Module):
    """A frozen teacher that returns fp32 logits as fast as the device allows.

    Args:
        model: the teacher (its parameters are frozen here).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast of the forward.
        fold_bn: fold BatchNorm into the convolutions (eval-mode teachers only); done once,
            at construction, on a probe input of ``probe_size`` pixels.
        channels_last: run in the channels_last memory layout.
        compile: ``torch.compile`` the teacher (True, or the kwargs of ``torch.compile``).
        bn_mode: ``eval`` (running statistics, foldable) or ``train`` (batch statistics).

    The returned logits are ordinary tensors (cloned out of inference mode), so losses may
    use them next to the student's graph.
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "auto",
        fold_bn: bool = True,
        channels_last: bool = True,
        compile: bool | dict = False,
        bn_mode: str = "eval",
        probe_size: int = 224,
    ):
        super().__init__()
        if bn_mode not in ("eval", "train"):
            raise ValueError(f"bn_mode={bn_mode!r}: expected 'eval' or 'train'")
        self.precision = precision
        resolve_precision(precision, "cpu")  # validates the name
        self._resolved: dict[str, str] = {}  # device type -> the precision it resolves to
        self.bn_mode = bn_mode
        self.channels_last = bool(channels_last)
        self.num_classes = getattr(model, "num_classes", None)
        model.requires_grad_(False).eval()
        self.folded = 0
        on_meta = any(p.is_meta for p in model.parameters())
        if fold_bn and bn_mode == "eval" and not on_meta:
            p = next(model.parameters(), None)
            with _fresh_rng():  # the probe must not consume the caller's random stream
                example = torch.randn(2, 3, probe_size, probe_size).to(
                    p.device if p is not None else "cpu"
                )
                try:
                    self.folded = fold_batchnorm(model, example)
                except RuntimeError as e:  # not where it does not apply (timm's BatchNormAct2d:
                    # the activation lives in the BatchNorm); the model was restored
                    logging.getLogger("ssld_zoo.distill").warning(
                        "teacher BatchNorm not folded: %s", e
                    )
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self._compile = compile
        # kept in a list so the compiled wrapper is not registered as a second submodule
        # (its parameters would appear twice in the state dict)
        self._compiled: list = []

    def train(self, mode: bool = True) -> "OnlineTeacher":
        # A teacher normalising with running statistics stays in eval mode whatever the
        # runner asks; one with batch statistics follows it.
        super().train(mode and self.bn_mode == "train")
        return self

    def _runner(self):
        if not self._compile:
            return self.model
        if not self._compiled:
            kwargs = self._compile if isinstance(self._compile, dict) else {}
            self._compiled.append(torch.compile(self.model, **kwargs))
        return self._compiled[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        precision = self._resolved.get(x.device.type)
        if precision is None:  # once per device type: not a device query on every batch
            precision = self._resolved[x.device.type] = resolve_precision(self.precision, x.device)
        autocast = (
            torch.autocast(x.device.type, dtype=_DTYPES[precision])
            if precision in _DTYPES
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            logits = self._runner()(x).float()
        return logits.clone()  # a normal tensor: inference tensors cannot meet autograd

    def __deepcopy__(self, memo: dict) -> "OnlineTeacher":
        # a compiled callable does not deep-copy; the copy compiles again on first use
        new = copy.copy(self)
        new.__dict__ = {
            k: ([] if k == "_compiled" else copy.deepcopy(v, memo))
            for k, v in self.__dict__.items()
        }
        return new


@contextlib.contextmanager
def _fresh_rng():
    """Runs with torch's CPU generator seeded and restores it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
