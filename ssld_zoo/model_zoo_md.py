"""Render MODEL_ZOO.md from the registry: ``python -m ssld_zoo.model_zoo_md > MODEL_ZOO.md``.

A test checks that the committed file equals this output, so the table cannot drift.
"""

from __future__ import annotations

from ssld_zoo.api import complexity
from ssld_zoo.interop import formats_for
from ssld_zoo.registry import get_arch, list_architectures, list_weights


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _layouts(arch: str) -> str:
    return ", ".join(formats_for(arch)) or "-"


def render() -> str:
    """The whole MODEL_ZOO.md as a string."""
    cards = list_weights()
    ssld = [c for c in cards if c.is_ssld]
    lines = [
        "# Model zoo",
        "",
        "Generated from the registry by `python -m ssld_zoo.model_zoo_md > MODEL_ZOO.md`"
        " (`make zoo-md`); `tests/test_model_zoo_md.py` fails when it is out of date.",
        "",
        "Top-1 is the ImageNet-1k accuracy PaddleClas publishes (its doc is named per row); "
        "parameters and GMACs (multiply-adds) are counted by `ssld_zoo.model_info` with torch's "
        "FLOP counter at the weight's input size. Parity: every architecture is compared with "
        "PaddleClas 2.6.0 itself in CI (`tests/parity/`: logits and every stage output, float64 "
        "relative error <= 1e-6, float32 <= 1e-4 or 3x PaddleClas's own float32 error where "
        "that is larger, same top-5); see docs/parity.md.",
        "",
        f"## SSLD weights ({len(ssld)})",
        "",
        "`ssld_zoo.list_models('*_ssld')` gives the final SSLD weights; PP-HGNetV2's stage-1 "
        "weights (distilled on the mined unlabeled set, before the ImageNet-1k fine-tune) are "
        "the `*_ssld_stage1` rows. *Converts to*: the layouts `ssld-zoo to FORMAT NAME OUT` "
        "writes it in, checked by running that code (timm; MMDetection `ResNetV1d`; transformers "
        "`RTDetrResNetBackbone`/`HGNetV2Backbone` = `hf`; RT-DETR `PResNet` = `rtdetr`; "
        "D-FINE/DEIM `HGNetv2` = `dfine`): see docs/detectors.md.",
        "",
        "| name | architecture | params (M) | GMACs | input | baseline top-1 | SSLD top-1 | gain |"
        " teacher | source | converts to |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for c in ssld:
        cx = complexity(c.arch, c.transform.input_size)
        gain = (c.top1 - c.baseline_top1) if (c.top1 and c.baseline_top1) else None
        lines.append(
            f"| `{c.name}` | {get_arch(c.arch).paddle_name} | {cx['params_m']:.2f} | "
            f"{cx['gmacs']:.3g} | {c.transform.input_size} | {_num(c.baseline_top1)} | "
            f"{_num(c.top1)} | {_num(gain, '{:+.2f}')} | {c.teacher or '-'} | {c.top1_source} | "
            f"{_layouts(c.arch)} |"
        )
    other = [c for c in cards if not c.is_ssld]
    lines += [
        "",
        f"## Other weights: baselines and teachers ({len(other)})",
        "",
        "| name | architecture | params (M) | GMACs | input | top-1 | source | converts to |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for c in other:
        cx = complexity(c.arch, c.transform.input_size)
        lines.append(
            f"| `{c.name}` | {get_arch(c.arch).paddle_name} | {cx['params_m']:.2f} | "
            f"{cx['gmacs']:.3g} | {c.transform.input_size} | {_num(c.top1)} | {c.top1_source} | "
            f"{_layouts(c.arch)} |"
        )
    archs = list_architectures()
    with_weights = {c.arch for c in cards}
    lines += [
        "",
        f"## Architectures ({len(archs)})",
        "",
        "Every architecture below is parity-tested against PaddleClas in CI. Those without "
        "published weights load with `pretrained=False` or `weights=PATH`.",
        "",
        "| architecture | PaddleClas class | family | params (M) | GMACs @224 | published weights |"
        " converts to |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for name in archs:
        a = get_arch(name)
        cx = complexity(name, 224)
        lines.append(
            f"| `{name}` | {a.paddle_name} | {a.family} | {cx['params_m']:.2f} | "
            f"{cx['gmacs']:.3g} | {'yes' if name in with_weights else 'no'} | "
            f"{_layouts(name)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
