"""``ssld-zoo convert SOURCE --model NAME [-o OUT.safetensors]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert weights (a .pdparams, ...) to safetensors",
        description="Read weights (a .pdparams, .pth or .safetensors file, a "
        "URL or a registered weight name), check them strictly "
        "against the architecture and write them as safetensors.",
    )
    p.add_argument("file", metavar="SOURCE", help="weights file, URL or registered weight name")
    p.add_argument("--model", required=True, help="architecture name, e.g. resnet50_vd")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output .safetensors (default: beside FILE, or NAME.safetensors here)",
    )
    p.set_defaults(func=run)


def _default_output(source) -> Path:
    from ssld_zoo.weights.urls import file_name_for

    if source.kind == "file":
        return source.path.with_suffix(".safetensors")
    name = file_name_for(source.text) if source.kind == "url" else source.card.name
    return Path(Path(name).stem + ".safetensors")


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from ssld_zoo.registry import get_arch
    from ssld_zoo.weights.fileops import atomic_write
    from ssld_zoo.weights.source import load_weights, parse_source

    arch = get_arch(args.model).name
    source = parse_source(args.file)
    out = args.output or _default_output(source)
    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    if source.kind == "file" and out.resolve() == source.path.resolve():
        raise ValueError(
            f"{out} is the input file: converting would overwrite it; name "
            "another output with -o OUT.safetensors"
        )
    state = load_weights(source, arch).state
    atomic_write(
        out,
        lambda tmp: save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(tmp),
            metadata={"arch": arch, "source": str(source)},
        ),
    )
    console.print(f"[green]wrote[/] {out} ({len(state)} tensors, architecture {arch})")
    return 0
