#!/usr/bin/env bash
# Install the OpenMMLab stack that ssld-zoo's downstream configs and tests use, into one venv.
#
#   downstream/install_openmmlab.sh [VENV]        (or SSLD_ZOO_VENV=...; default <repo>/.venv)
#
# Idempotent: a venv that already imports the pinned versions (and mmcv's compiled ops) is left
# as is in about a second. Pins and why (measured on torch 2.14 / Python 3.11, 2 cores):
#   * mmcv 2.1.0: mmdet 3.3.0 and mmsegmentation 1.2.2 refuse mmcv 2.2 at import. PyPI has only
#     its source; it is built here once, with its C++ ops (MMCV_WITH_OPS=1; RoIAlign, NMS, ...).
#     torch >= 2.10 headers need C++20 but mmcv's setup.py asks for C++17: that one flag is
#     patched when torch's ATen.h demands C++20. CFLAGS without debug info: 4 min and a 1.4 MB
#     wheel instead of 8.5 min and 32 MB (setting CFLAGS replaces Python's defaults, so -O3 and
#     -DNDEBUG are repeated). The wheel is cached in $SSLD_ZOO_HOME/wheels (default
#     ~/.cache/ssld_zoo/wheels), keyed by mmcv, Python, torch and CPU/CUDA, so the next install
#     of the same combination takes seconds.
#   * setuptools >=77,<81: mmcv's setup.py and mmengine import pkg_resources (gone in 81).
#   * mmengine 0.10.7, mmdet 3.3.0, mmsegmentation 1.2.2 (+ ftfy, regex, which it imports
#     without declaring), pycocotools (CocoMetric).
#   * openmim 0.3.9 (the `mim` command) WITHOUT its dependencies: they pull openxlab, which
#     downgrades setuptools, requests and more. Its real imports are added by hand instead.
# GPU users: set FORCE_CUDA=1 (or have a visible GPU) to build the CUDA ops, or install a
# prebuilt wheel from https://download.openmmlab.com/mmcv/dist/<cuda>/<torch>/index.html first
# when one exists for your torch/CUDA pair (this script then keeps it).
set -euo pipefail

MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
MMSEG_VERSION=1.2.2
OPENMIM_VERSION=0.3.9

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${SSLD_ZOO_VENV:-$repo_root/.venv}}"
py="$venv/bin/python"
if [[ ! -x "$py" ]]; then
    echo "install_openmmlab: no Python at $py (pass the venv as the first argument or set SSLD_ZOO_VENV)" >&2
    exit 2
fi
# Absolute: the mmcv build below runs pip from inside the unpacked source tree.
venv="$(cd "$venv" && pwd)"
py="$venv/bin/python"
pip=("$py" -m pip --disable-pip-version-check -q)
cache_root="${SSLD_ZOO_HOME:-$HOME/.cache/ssld_zoo}/wheels"
start=$SECONDS
log() { printf 'install_openmmlab [%3ss]: %s\n' "$((SECONDS - start))" "$*"; }

# Everything already in place? (mmcv.ops imports the compiled extension.)
if "$py" - "$MMCV_VERSION" "$MMENGINE_VERSION" "$MMDET_VERSION" "$MMSEG_VERSION" "$OPENMIM_VERSION" <<'EOF' 2>/dev/null
import sys, importlib.metadata as md
want = dict(zip(["mmcv", "mmengine", "mmdet", "mmsegmentation", "openmim"], sys.argv[1:]))
for dist, version in want.items():
    if md.version(dist) != version:
        sys.exit(1)
for dist in ["pycocotools", "ftfy", "regex", "click", "model-index", "tabulate", "pandas"]:
    md.version(dist)
import mmcv.ops, mmdet, mmseg, mim  # noqa: F401
EOF
then
    log "OpenMMLab stack already installed in $venv"
    exit 0
fi

log "installing into $venv"
"${pip[@]}" install "setuptools>=77,<81" wheel

# Which mmcv build this venv needs: the cache key.
read -r py_tag torch_version ops_kind cxx20 < <("$py" - <<'EOF'
import os, sys, pathlib, torch
cuda = torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1"
aten = pathlib.Path(torch.__file__).parent / "include" / "ATen" / "ATen.h"
cxx20 = aten.is_file() and "202002L" in aten.read_text()
kind = f"cu{torch.version.cuda.replace('.', '')}" if cuda and torch.version.cuda else "cpu"
print(f"cp{sys.version_info.major}{sys.version_info.minor}", torch.__version__, kind, int(cxx20))
EOF
)
[[ -n "${ops_kind:-}" ]] || { echo "install_openmmlab: cannot inspect torch in $venv" >&2; exit 1; }
wheel_dir="$cache_root/mmcv-$MMCV_VERSION-$py_tag-torch${torch_version//+/_}-$ops_kind"
wheel="$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"

have_mmcv="$("$py" -c 'import importlib.metadata as m; print(m.version("mmcv"))' 2>/dev/null || true)"
if [[ "$have_mmcv" == "$MMCV_VERSION" ]] && "$py" -c 'import mmcv.ops' 2>/dev/null; then
    log "mmcv $MMCV_VERSION with ops already installed (kept)"
elif [[ -n "$wheel" ]]; then
    log "mmcv $MMCV_VERSION from cached wheel $wheel"
    "${pip[@]}" install --no-deps --force-reinstall "$wheel"
else
    log "building mmcv $MMCV_VERSION ($ops_kind ops, torch $torch_version) - a few minutes, done once"
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    # The sdist only; --no-build-isolation so its metadata step sees this venv's torch.
    "${pip[@]}" download "mmcv==$MMCV_VERSION" --no-deps --no-binary :all: --no-build-isolation -d "$build"
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    if [[ "$cxx20" == 1 ]]; then
        # torch's headers #error below C++20; mmcv hard-codes -std=c++17 (cxx and nvcc).
        sed -i "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
        grep -q "'-std=c++20'" "$src/setup.py" || { echo "install_openmmlab: could not patch mmcv's C++ standard" >&2; exit 1; }
    fi
    jobs="$(nproc 2>/dev/null || echo 2)"
    (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS="$jobs" \
        CFLAGS="-Wsign-compare -DNDEBUG -fwrapv -O3 -g0" CXXFLAGS="-g0" \
        "${pip[@]}" wheel . --no-deps --no-build-isolation -w "$build/dist")
    mkdir -p "$wheel_dir"
    built="$(ls "$build"/dist/mmcv-*.whl)"
    # Copy then rename: a concurrent or interrupted install never sees half a wheel.
    cp "$built" "$wheel_dir/.partial.whl"
    mv "$wheel_dir/.partial.whl" "$wheel_dir/$(basename "$built")"
    wheel="$wheel_dir/$(basename "$built")"
    log "mmcv wheel cached at $wheel ($(du -h "$wheel" | cut -f1))"
    "${pip[@]}" install --no-deps --force-reinstall "$wheel"
fi

log "mmengine, mmdet, mmsegmentation and their dependencies"
# Never let a dependency move the venv's torch, torchvision or numpy: pin them as they are.
constraints="$(mktemp)"
"$py" - >"$constraints" <<'EOF'
import importlib.metadata as md
for dist in ("torch", "torchvision", "numpy"):
    try:
        print(f"{dist}=={md.version(dist)}")
    except md.PackageNotFoundError:
        pass
EOF
# mmcv's own requirements (it was installed --no-deps) plus the libraries; setuptools stays <81.
"${pip[@]}" install -c "$constraints" "setuptools>=77,<81" "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" \
    "mmsegmentation==$MMSEG_VERSION" addict packaging pillow pyyaml yapf opencv-python \
    ftfy regex pycocotools
log "openmim $OPENMIM_VERSION (without openxlab)"
# (pip then warns that openmim's opendatalab is missing: expected, mim train/test never use it.)
"${pip[@]}" install --no-deps "openmim==$OPENMIM_VERSION"
"${pip[@]}" install -c "$constraints" click colorama model-index pandas requests rich tabulate
rm -f "$constraints"

"$py" - <<'EOF'
import importlib.metadata as md
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, mim  # noqa: F401  (mmcv.ops: the compiled ops)
print(f"mmcv {mmcv.__version__} (ops ok), mmengine {mmengine.__version__}, "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, openmim {md.version('openmim')}")
EOF
log "done"
