"""``ssld-zoo convert FILE.pdparams --model NAME [-o OUT.safetensors]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a PaddleClas .pdparams to safetensors")
    p.add_argument("file", type=Path, help="the .pdparams (or .pth/.safetensors) file")
    p.add_argument("--model", required=True, help="architecture name, e.g. resnet50_vd")
    p.add_argument("-o", "--output", type=Path, help="output .safetensors (default: beside FILE)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from ssld_zoo.registry import get_arch
    from ssld_zoo.weights.files import load_state_file
    from ssld_zoo.weights.hub import atomic_write

    arch = get_arch(args.model)
    model = arch.builder()
    model.arch_name = arch.name
    state, _ = load_state_file(args.file, model)
    out = args.output or args.file.with_suffix(".safetensors")
    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    atomic_write(out, lambda tmp: save_file({k: v.contiguous() for k, v in state.items()},
                                            str(tmp), metadata={"arch": arch.name,
                                                                "source": str(args.file)}))
    console.print(f"[green]wrote[/] {out} ({len(state)} tensors, architecture {arch.name})")
    return 0
