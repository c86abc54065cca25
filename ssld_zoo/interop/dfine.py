"""D-FINE / DEIM / DEIMv2's HGNetV2 layout (``Peterande/D-FINE``,
``src/nn/backbone/hgnetv2.py``): PP-HGNetV2 B0-B6 without the classifier, as the ``.pth``
state dict those projects load as ``PPHGNetV2_B<i>_stage1.pth``.

Their ``HGNetv2`` keeps PaddleClas's module names except one: a block's two aggregation
convs are ``aggregation.0`` / ``aggregation.1`` (PaddleClas: ``aggregation_squeeze_conv`` /
``aggregation_excitation_conv``). Their ``StemBlock`` pads the max-pool with zeros, as
transformers' ``HGNetV2Backbone`` does (see :mod:`ssld_zoo.interop.hf` for when that matters).
D-FINE loads this file with ``strict=False``, so a wrong name would be skipped silently there:
the key names and shapes are held in ``tests/interop/fixtures`` (read from D-FINE's source),
and each tensor written here is the one the ``hf`` format writes under the name transformers'
D-FINE conversion gives it (:data:`DFINE_TO_HF`), which is checked by output.

PaddleClas's stage-1 SSLD weights (``pphgnetv2_b4_ssld_stage1`` ...) are what D-FINE's
``*_stage1.pth`` files are: convert those names to get the same starting point.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ssld_zoo.interop._core import Converted, Format, register_format, rename_state, save_pth

__all__ = ["DFineFormat", "DFINE_TO_HF"]

_VARIANTS = tuple(f"B{i}" for i in range(7))

_DFINE_RULES: tuple[tuple[str, str | None], ...] = (
    (r"(last_conv|lab|fc)\.\w+", None),  # the classifier head
    (r"(stages\.\d+\.blocks\.\d+)\.aggregation_squeeze_conv\.(.+)", r"\1.aggregation.0.\2"),
    (r"(stages\.\d+\.blocks\.\d+)\.aggregation_excitation_conv\.(.+)", r"\1.aggregation.1.\2"),
    (r"(stem|stages)\..+", r"\g<0>"),
)

#: transformers' mapping of D-FINE's backbone keys onto ``HGNetV2Backbone``'s
#: (``convert_d_fine_original_pytorch_checkpoint_to_hf.py``, less the ``backbone.`` /
#: ``model.backbone.model.`` prefixes), as (regex, replacement) pairs.
DFINE_TO_HF: tuple[tuple[str, str], ...] = (
    (r"stem\.(stem\w+)\.conv\.(\w+)", r"embedder.\1.convolution.\2"),
    (r"stem\.(stem\w+)\.bn\.(\w+)", r"embedder.\1.normalization.\2"),
    (r"stem\.(stem\w+)\.lab\.(\w+)", r"embedder.\1.lab.\2"),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.layers\.(\d+)\.conv\.(\w+)",
        r"encoder.stages.\1.blocks.\2.layers.\3.convolution.\4",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.layers\.(\d+)\.bn\.(\w+)",
        r"encoder.stages.\1.blocks.\2.layers.\3.normalization.\4",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.layers\.(\d+)\.(conv[12])\.conv\.(\w+)",
        r"encoder.stages.\1.blocks.\2.layers.\3.\4.convolution.\5",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.layers\.(\d+)\.(conv[12])\.bn\.(\w+)",
        r"encoder.stages.\1.blocks.\2.layers.\3.\4.normalization.\5",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.layers\.(\d+)\.(conv[12]\.)?lab\.(\w+)",
        r"encoder.stages.\1.blocks.\2.layers.\3.\4lab.\5",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.aggregation\.([01])\.conv\.(\w+)",
        r"encoder.stages.\1.blocks.\2.aggregation.\3.convolution.\4",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.aggregation\.([01])\.bn\.(\w+)",
        r"encoder.stages.\1.blocks.\2.aggregation.\3.normalization.\4",
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.aggregation\.([01])\.lab\.(\w+)",
        r"encoder.stages.\1.blocks.\2.aggregation.\3.lab.\4",
    ),
    (r"stages\.(\d+)\.downsample\.conv\.(\w+)", r"encoder.stages.\1.downsample.convolution.\2"),
    (r"stages\.(\d+)\.downsample\.bn\.(\w+)", r"encoder.stages.\1.downsample.normalization.\2"),
)


@register_format
class DFineFormat(Format):
    name = "dfine"
    summary = "D-FINE / DEIM / DEIMv2 HGNetv2 backbone state dict (.pth, PPHGNetV2_B*_stage1)"
    suffix = ".pth"

    def targets(self) -> dict[str, str]:
        return {f"pphgnetv2_{v.lower()}": f"HGNetv2(name='{v}')" for v in _VARIANTS}

    def why_not(self, arch: str) -> str:
        return "D-FINE/DEIM's PaddleClas backbone is HGNetv2 (PP-HGNetV2 B0-B6) only"

    def convert(self, model: nn.Module, arch: str) -> Converted:
        state = rename_state(model.state_dict(), _DFINE_RULES, f"{arch} -> dfine")
        variant = arch.rsplit("_", 1)[1].upper()
        return Converted(
            self.name,
            arch,
            self.targets()[arch],
            state,
            {"name": variant, "use_lab": bool(model.use_lab)},
        )

    def check(self, model: nn.Module, converted: Converted) -> float:
        from ssld_zoo.interop.hf import run_hgnetv2

        hf_state = rename_state(converted.state, DFINE_TO_HF, "dfine -> hf")
        return run_hgnetv2(model, hf_state, "dfine (through transformers' HGNetV2Backbone)")

    def write(self, converted: Converted, out: Path) -> None:
        save_pth(converted.state, out)

    def usage(self, converted: Converted, out: Path) -> str:
        # D-FINE/DEIM read local_model_dir + "PPHGNetV2_<name>_stage1.pth" before downloading.
        c = converted.config
        expected = f"PPHGNetV2_{c['name']}_stage1.pth"
        line = (
            f"HGNetv2: {{name: {c['name']}, use_lab: {c['use_lab']}, pretrained: True, "
            f"local_model_dir: {str(out.parent) + '/'!r}}}"
        )
        if out.name == expected:
            return line
        return f"{line}  # after renaming {out.name} to {expected}"
