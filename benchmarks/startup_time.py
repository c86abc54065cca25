"""Start-up time of ``ssld-zoo list`` and of ``import ssld_zoo; ssld_zoo.load(...)``, two trees
side by side.

Each measurement is a fresh interpreter (what a user pays), timed from outside, the trees'
runs interleaved so that both see the same machine load; the table gives the median and the
fastest of ``--repeats`` runs, and which heavy modules each run imported::

    python benchmarks/startup_time.py --before 96770c5 --repeats 7

``--before REV`` is extracted with ``git archive`` into a temporary folder (the checkout is
not touched); ``--after`` is a folder, default this checkout. Both run with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("mmengine", "sklearn", "matplotlib", "onnx", "timm")

# Each case runs in its own interpreter and prints the heavy modules it imported, as JSON.
CASES = {
    "ssld-zoo list": """
import contextlib, io, sys
from ssld_zoo.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["list"]) == 0
""",
    "import ssld_zoo; load('resnet50_vd', pretrained=False)": """
import sys
import ssld_zoo
ssld_zoo.load("resnet50_vd", pretrained=False)
""",
}
REPORT = """
import json
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
""" % (HEAVY,)


def run_once(tree: Path, code: str) -> tuple[float, list[str]]:
    """Wall seconds of one fresh interpreter running ``code`` with ``tree`` first on the path."""
    env = {
        "PYTHONPATH": str(tree),
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "HOME": str(Path.home()),
    }
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{tree}: failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="git revision of the 'before' tree")
    p.add_argument("--after", type=Path, default=REPO, help="folder of the 'after' tree")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ssld_zoo_before_") as tmp:
        trees = {
            f"before ({args.before})": extract(args.before, Path(tmp)),
            f"after ({args.after})": args.after.resolve(),
        }
        runs: dict[tuple[str, str], list[float]] = {}
        heavy: dict[tuple[str, str], list[str]] = {}
        for case, code in CASES.items():
            for tree in trees.values():  # warm the file cache: the first run reads from disk
                run_once(tree, code)
            for _ in range(args.repeats):
                for label, tree in trees.items():
                    wall, mods = run_once(tree, code)
                    runs.setdefault((case, label), []).append(wall)
                    heavy[case, label] = mods
    print(
        f"python {sys.version.split()[0]}, {args.repeats} runs each, fresh interpreter per "
        f"run, interleaved\n"
    )
    print(f"| {'command':<56} | {'tree':<28} | median s | fastest s | heavy modules imported |")
    print(f"|{'-' * 58}|{'-' * 30}|---------:|----------:|------------------------|")
    for (case, label), walls in runs.items():
        mods = ", ".join(heavy[case, label]) or "none"
        print(
            f"| {case:<56} | {label:<28} | {statistics.median(walls):8.2f} | "
            f"{min(walls):9.2f} | {mods} |"
        )


if __name__ == "__main__":
    main()
