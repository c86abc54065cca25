"""``ssld-zoo to-timm NAME OUT.safetensors [--weights FILE] [--no-check]``.

Writes a zoo model's weights as a state dict for the timm model of the same network
(:mod:`ssld_zoo.interop`), after checking (unless ``--no-check``) that timm's model, loaded
with it, gives our outputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    import textwrap

    from ssld_zoo.interop import TIMM_EQUIVALENTS

    pairs = "  ".join(f"{a}->{t}" for a, t in sorted(TIMM_EQUIVALENTS.items()))
    p = sub.add_parser(
        "to-timm", help="write a model's weights for timm's implementation of it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert NAME's weights to a safetensors file that timm loads into its\n"
                    "implementation of the same network (same outputs, checked before writing).",
        epilog="architectures with an exact timm equivalent (ours->timm):\n" + textwrap.fill(
            pairs, width=96, initial_indent="  ", subsequent_indent="  ",
            break_on_hyphens=False))
    p.add_argument("name", help="model or weight name, e.g. resnet50_vd_ssld")
    p.add_argument("output", type=Path, help="the .safetensors file to write")
    p.add_argument("--weights", help="a weights file (or registered weight name) to convert "
                                     "instead of NAME's published weights")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing timm's outputs with ours before writing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    import ssld_zoo
    from ssld_zoo.interop import check_timm_state_dict, timm_equivalent, to_timm_state_dict
    from ssld_zoo.registry import get_arch
    from ssld_zoo.weights.fileops import atomic_write

    out: Path = args.output
    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    timm_equivalent(args.name)  # an unsupported name fails here, before any download
    arch = get_arch(args.name).name
    model = (ssld_zoo.load(args.name) if args.weights is None
             else ssld_zoo.load(args.name, weights=args.weights))
    timm_name, state = to_timm_state_dict(model)
    if not args.no_check:
        diff = check_timm_state_dict(model, timm_name, state)
        console.print(f"checked: timm's output equals ours (max difference {diff:.2g})")
    atomic_write(out, lambda tmp: save_file(
        {k: v.contiguous() for k, v in state.items()}, str(tmp),
        metadata={"timm_model": timm_name, "arch": arch,
                  "source": str(args.weights or args.name)}))
    console.print(f"[green]wrote[/] {out} ({len(state)} tensors) for timm model "
                  f"[bold]{timm_name}[/]")
    n = int(getattr(model, "num_classes", 1000))
    # timm drops a checkpoint's classifier when its cfg says another class count: say ours.
    extra = "" if n == 1000 else f", num_classes={n}"
    overlay = f"dict(file={str(out)!r}{extra})"
    # print(), not rich: the hint is code to copy, so it must not be wrapped or highlighted.
    print(f"timm.create_model({timm_name!r}, pretrained=True, "
          f"pretrained_cfg_overlay={overlay}{extra})")
    return 0
