#!/usr/bin/env bash
# Create (once) the PaddlePaddle reference venv the parity tests compare against.
#
#   tests/parity/setup_paddle_env.sh [VENV_DIR]     (default: <repo>/.venv-paddle)
#
# Idempotent: a stamp file inside the venv records a completed, verified setup, and a later call
# returns at once. An existing venv without a stamp (made by hand with the same commands) is
# verified and stamped, not rebuilt; only what fails verification is (re)installed.
# Paddle lives in its own venv because paddle and torch in one process fight over OpenMP/MKL.
# Env: PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail

PADDLE_VERSION=3.3.1
PADDLECLAS_VERSION=2.6.0
# paddleclas is installed --no-deps (its full requirements pull in opencv, faiss, ...); these are
# what importing ppcls.arch.backbone and tests/parity/paddle_reference.py need.
EXTRA_DEPS=(scikit-learn requests tqdm six PyYAML pillow numpy)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$REPO/.venv-paddle}"
STAMP="$VENV/.ssld-zoo-paddle-ready"
WANT="paddlepaddle==$PADDLE_VERSION paddleclas==$PADDLECLAS_VERSION"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    echo "paddle reference venv ready: $VENV ($WANT)"
    exit 0
fi

verify() {
    # Imports exactly what the parity tests import, and checks the pinned versions.
    "$VENV/bin/python" - "$PADDLE_VERSION" "$PADDLECLAS_VERSION" <<'EOF'
import importlib.metadata as md, os, sys
want_paddle, want_clas = sys.argv[1:3]
import paddle
assert paddle.__version__ == want_paddle, f"paddlepaddle {paddle.__version__} != {want_paddle}"
assert md.version("paddleclas") == want_clas, f"paddleclas {md.version('paddleclas')} != {want_clas}"
site = next(p for p in sys.path if p.endswith("site-packages"))
sys.path.insert(0, os.path.join(site, "paddleclas"))
from ppcls.utils import logger
logger.init_logger()
import ppcls.arch.backbone  # noqa: F401
import numpy, PIL, sklearn, yaml  # noqa: F401
EOF
}

if [[ -x "$VENV/bin/python" ]] && verify >/dev/null 2>&1; then
    echo "existing paddle reference venv verified: $VENV"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "creating paddle reference venv: $VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
    else
        echo "repairing paddle reference venv: $VENV"
    fi
    PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
    "${PIP[@]}" "paddlepaddle==$PADDLE_VERSION"
    "${PIP[@]}" --no-deps "paddleclas==$PADDLECLAS_VERSION"
    "${PIP[@]}" "${EXTRA_DEPS[@]}"
    verify
fi

# Written last, through a temp file: an interrupted setup never leaves a stamp behind.
printf '%s' "$WANT" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
echo "paddle reference venv ready: $VENV ($WANT)"
