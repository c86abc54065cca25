"""Every registered architecture computes what PaddleClas 2.6.0 computes, given the same weights.

For each architecture in ``ssld_zoo.registry.list_architectures()`` (new families are picked up
automatically), ``paddle_reference.py`` runs in the PaddlePaddle venv, in one worker process
for the session (Paddle is imported once, not once per architecture): it builds
``get_arch(name).paddle_name`` with randomised BatchNorm statistics, saves the weights as a
real ``.pdparams`` and records logits (float32 and float64) on a random batch and on a real photo,
plus the outputs of the sub-layers named by the zoo model's ``feature_info``. The zoo model then
loads that file strictly (``ssld_zoo.load(name, pretrained=False, weights=...)``) and must agree.

Relative error of a tensor = max|ours - paddle| / max|paddle| (over the whole tensor: a scale-free
sup-norm error that does not blow up on near-zero elements). Limits: 1e-6 in float64 (a correct
port reaches ~1e-9 or better; anything larger is a real difference, not rounding) and 1e-4 in
float32, or 3x Paddle's own float32-vs-float64 error where that is larger (see ``tolerance``).
The top-5 classes must be the same, except where two of Paddle's logits tie within that tolerance.

Input sizes: the random batch is ``parity_size(arch) + 3`` (odd: exercises ceil-mode pooling
and padding on every stride-2 layer) unless the model class says ``fixed_input_size = True``
(then ``parity_size(arch)``); the photo is ``parity_size(arch)``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import ssld_zoo
from ssld_zoo.models._base import FeaturePyramid
from ssld_zoo.registry import get_arch, list_architectures

pytestmark = [pytest.mark.parity, pytest.mark.slow]

REFERENCE_SCRIPT = Path(__file__).with_name("paddle_reference.py")
PHOTO = "coco_mini/images/val/000000037777.jpg"
TOL = {"fp64": 1e-6, "fp32": 1e-4}
DTYPES = {"fp64": torch.float64, "fp32": torch.float32}
REFERENCE_TIMEOUT_S = 1800
# Paddle's allocator keeps what a giant model (the WSL teachers: GBs in float64) used: a worker
# holding more than this after a job is restarted rather than kept.
WORKER_RSS_LIMIT_MB = 2048
# One thread on each side: both are CPU-bound on a small CI machine, and torch's OpenMP workers
# spin when they share cores (2 threads on a busy 2-core box measured ~5x slower than 1).
THREADS = 1
# Input side of the parity run (default 224). Smaller for the giant and the slow ones, still
# valid inputs: minutes per run at 224 on CI CPUs, and float64 of an 829M-parameter model.
# Next-ViT at 128 (random batch 131) exercises ceil-mode pooling and token counts its 1-D
# key/value pooling does not divide; its _384 builds are the same modules as the _224 ones, so
# their (duplicate) runs use 96. PP-HGNetV2 runs at 128 from B3 up.
PARITY_SIZES = {
    "pphgnet_small": 128,
    "pphgnet_base": 128,
    "pphgnetv2_b3": 128,
    "pphgnetv2_b4": 128,
    "pphgnetv2_b5": 128,
    "pphgnetv2_b6": 128,
    "nextvit_small_224": 128,
    "nextvit_base_224": 128,
    "nextvit_large_224": 128,
    "nextvit_small_384": 96,
    "nextvit_base_384": 96,
    "nextvit_large_384": 96,
    "resnext101_32x8d_wsl": 112,
    "resnext101_32x16d_wsl": 96,
    "resnext101_32x32d_wsl": 64,
    "resnext101_32x48d_wsl": 64,
}


def parity_size(arch: str) -> int:
    """The side of the photo (and, +3, of the random batch) of ``arch``'s parity run."""
    return PARITY_SIZES.get(arch, 224)


def test_parity_sizes_name_registered_architectures() -> None:
    """A renamed architecture must not silently fall back to a 224 run."""
    assert set(PARITY_SIZES) <= set(list_architectures())


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max|ours - ref| / max|ref| (0 when both are all zeros)."""
    scale = float(np.max(np.abs(ref)))
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
    return diff / scale if scale > 0 else diff


def tolerance(case: "ParityCase", key: str, tag: str) -> float:
    """The limit for ``key`` (``logits_random``, ``feat__blocks.3``) in precision ``tag``.

    float64: ``TOL['fp64']``. float32: ``TOL['fp32']``, or 3x Paddle's own float32 error
    (its fp32 output against its fp64 output) when that is larger: in very deep and wide
    models (the WSL teachers) float32 rounding alone exceeds 1e-4 in late stages, and a port
    cannot agree with Paddle more closely than Paddle agrees with exact arithmetic. The float64
    comparison, which has no such slack, is what proves the port.
    """
    if tag == "fp64":
        return TOL["fp64"]
    lo = case.paddle[key.replace("<tag>", "fp32")]
    hi = case.paddle[key.replace("<tag>", "fp64")]
    return max(TOL["fp32"], 3 * relative_error(lo, hi))


def assert_same_top5(ours: np.ndarray, ref: np.ndarray, tol: float, what: str) -> None:
    """Identical top-5 indices per row; a swap is accepted only between classes whose Paddle
    logits tie within ``tol * max|ref|`` (rounding cannot order exact ties)."""
    slack = tol * float(np.max(np.abs(ref)))
    for row, (o, r) in enumerate(zip(ours, ref)):
        top_o = np.argsort(-o, kind="stable")[:5]
        top_r = np.argsort(-r, kind="stable")[:5]
        if np.array_equal(top_o, top_r):
            continue
        ties = all(abs(r[i] - r[j]) <= slack for i, j in zip(top_o, top_r))
        assert ties, (
            f"{what}, row {row}: top-5 classes differ: ours {top_o.tolist()}, "
            f"Paddle's {top_r.tolist()} (Paddle logits {r[top_r].tolist()})"
        )


@dataclass
class ParityCase:
    """One architecture's Paddle reference and the zoo's outputs on the same inputs."""

    arch: str
    paddle_name: str
    directory: Path
    inputs: dict[str, np.ndarray]
    paddle: dict[str, np.ndarray]
    stage_modules: list[str]
    paddle_s: float
    paddle_cpu_s: float
    torch: dict[str, np.ndarray] = field(default_factory=dict)
    load_error: str | None = None
    torch_s: float = 0.0
    torch_cpu_s: float = 0.0

    def require_loaded(self) -> None:
        if self.load_error is not None:
            pytest.fail(
                f"ssld_zoo.load({self.arch!r}, weights=<PaddleClas {self.paddle_name} "
                f".pdparams>) failed:\n{self.load_error}",
                pytrace=False,
            )

    def timing(self) -> dict:
        # Wall and CPU seconds: wall time on a shared machine says little, CPU time says
        # what the CI budget pays on an idle one.
        return {
            "arch": self.arch,
            "paddle_s": self.paddle_s,
            "torch_s": self.torch_s,
            "paddle_cpu_s": self.paddle_cpu_s,
            "torch_cpu_s": self.torch_cpu_s,
        }


class PaddleWorker:
    """One ``paddle_reference.py --serve`` process for the whole session: Paddle and
    PaddleClas are imported once, not once per architecture. A job that fails fails its
    architecture only; a worker that dies (a crash, the OOM killer) is restarted for the next."""

    def __init__(self, paddle_python: Path, log: Path) -> None:
        self.cmd = [str(paddle_python), str(REFERENCE_SCRIPT), "--serve"]
        self.log_path = log
        # One thread: set before paddle (and its BLAS/OpenMP runtimes) is imported.
        self.env = dict(
            os.environ,
            **{
                v: str(THREADS)
                for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            },
        )
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            # stderr to a file: a pipe nobody reads would fill up and stall the worker.
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    env=self.env,
                )
        return self.proc

    def run(self, args: list[str]) -> dict:
        """Run one parity job; its answer (``wall_s``, ``cpu_s``), or pytest.fail."""
        proc = self._start()
        proc.stdin.write(json.dumps(args) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], REFERENCE_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            proc.wait()
            why = f"exit {proc.returncode}" if ready else f"no answer in {REFERENCE_TIMEOUT_S} s"
            pytest.fail(
                f"paddle_reference.py --serve died ({why}) on {' '.join(args)}:\n{self.log_tail()}",
                pytrace=False,
            )
        answer = json.loads(line)
        if answer.get("rss_mb", 0) > WORKER_RSS_LIMIT_MB:
            self.close()  # give the memory back before torch loads the same giant model
        if not answer["ok"]:
            pytest.fail(
                f"paddle_reference.py failed on {' '.join(args)}:\n{answer['error']}", pytrace=False
            )
        return answer

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def paddle_worker(paddle_python, tmp_path_factory):
    worker = PaddleWorker(paddle_python, tmp_path_factory.mktemp("paddle") / "worker.log")
    yield worker
    worker.close()


def _run_paddle(
    arch: str, out: Path, worker: PaddleWorker, photo: Path | None
) -> tuple[list[str], float, float]:
    spec = get_arch(arch)
    with torch.device("meta"):  # no memory, no init: only names and attributes are needed
        probe = spec.builder()
    stage_modules = [f.module for f in probe.feature_info]
    fixed = bool(getattr(probe, "fixed_input_size", False))
    size = parity_size(arch) if fixed else parity_size(arch) + 3
    args = [
        "--model",
        spec.paddle_name,
        "--out",
        str(out),
        "--size",
        str(size),
        "--image-size",
        str(parity_size(arch)),
        "--features",
        ",".join(stage_modules),
        "--seed",
        "0",
    ]
    if photo is not None:
        args += ["--image", str(photo)]
    answer = worker.run(args)
    return stage_modules, answer["wall_s"], answer["cpu_s"]


def _run_torch(case: ParityCase) -> None:
    """Load the Paddle-saved weights into the zoo model (strictly) and record its outputs."""
    weights = case.directory / "model.pdparams"
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        _torch_outputs(case, weights)
    finally:
        torch.set_num_threads(threads)


def _torch_outputs(case: ParityCase, weights: Path) -> None:
    t, cpu = time.perf_counter(), time.process_time()
    try:
        model = ssld_zoo.load(case.arch, pretrained=False, weights=weights)
    except Exception as e:  # reported by every test of this architecture
        case.load_error = f"{type(e).__name__}: {e}"
        return
    with torch.no_grad():
        for tag in ("fp32", "fp64"):
            model.to(DTYPES[tag])
            for key, x in case.inputs.items():
                xt = torch.from_numpy(x).to(DTYPES[tag])
                case.torch[f"logits_{key}_{tag}"] = model(xt).numpy()
        # The features_only wrapper load(features_only=True) returns, around the same model
        # (one copy in memory: the 800M-parameter teacher in float64 is 6.6 GB).
        feats = FeaturePyramid(model)
        for tag in ("fp32", "fp64"):
            feats.to(DTYPES[tag])
            stages = feats(torch.from_numpy(case.inputs["random"]).to(DTYPES[tag]))
            for name, value in zip(case.stage_modules, stages):
                case.torch[f"feat_{tag}__{name}"] = value.numpy()
    case.torch_s, case.torch_cpu_s = time.perf_counter() - t, time.process_time() - cpu


@pytest.fixture(scope="module", params=list_architectures())
def case(request, tmp_path_factory, paddle_worker, test_data_optional):
    """Module-scoped and parametrised: pytest runs all tests of one architecture together and
    deletes its (large) files before the next one."""
    arch = request.param
    out = tmp_path_factory.mktemp(f"parity_{arch}")
    photo = test_data_optional / PHOTO if test_data_optional is not None else None
    if photo is not None and not photo.is_file():
        photo = None
    stage_modules, paddle_s, paddle_cpu_s = _run_paddle(arch, out, paddle_worker, photo)
    with np.load(out / "inputs.npz") as f:
        inputs = dict(f)
    with np.load(out / "outputs.npz") as f:
        paddle = dict(f)
    c = ParityCase(
        arch, get_arch(arch).paddle_name, out, inputs, paddle, stage_modules, paddle_s, paddle_cpu_s
    )
    _run_torch(c)
    yield c
    shutil.rmtree(out, ignore_errors=True)


def _check_logits(case: ParityCase, key: str) -> None:
    for tag in ("fp64", "fp32"):
        name = f"logits_{key}_{tag}"
        ours, ref = case.torch[name], case.paddle[name]
        assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != Paddle's {ref.shape}"
        err, tol = relative_error(ours, ref), tolerance(case, f"logits_{key}_<tag>", tag)
        assert err <= tol, (
            f"{case.arch} {name}: relative error {err:.3e} > {tol:.1e} "
            f"(max|paddle| {np.max(np.abs(ref)):.3e})"
        )
        assert_same_top5(ours, ref, tol, f"{case.arch} {name}")


def test_logits_random_batch(case: ParityCase, record_property) -> None:
    """Strict load, then logits on an N(0, 1) batch of 2 (odd size where allowed)."""
    record_property("parity_timing", case.timing())
    case.require_loaded()
    _check_logits(case, "random")


def test_logits_photo(case: ParityCase, resource_unavailable) -> None:
    """Logits on a real COCO photo, preprocessed as PaddleClas's eval does."""
    case.require_loaded()
    if "image" not in case.inputs:
        resource_unavailable(f"photo $SSLD_ZOO_TEST_DATA/{PHOTO} not found")
    _check_logits(case, "image")


def test_stage_features(case: ParityCase) -> None:
    """``features_only=True`` stage outputs equal the outputs of the same-named Paddle
    sub-layers; on failure the message lists every stage, so the first wrong one shows."""
    case.require_loaded()
    report, bad = [], []
    for tag in ("fp64", "fp32"):
        for name in case.stage_modules:
            key = f"feat_{tag}__{name}"
            if key not in case.paddle:
                near = sorted(k for k in case.paddle if k.startswith(key))
                bad.append(f"{key}: not captured in Paddle (captured like it: {near})")
                continue
            ours, ref = case.torch[key], case.paddle[key]
            if ours.shape != ref.shape:
                bad.append(f"{key}: shape {ours.shape} != Paddle's {ref.shape}")
                continue
            err, tol = relative_error(ours, ref), tolerance(case, f"feat_<tag>__{name}", tag)
            report.append(
                f"  {tag} {name:<24} {tuple(ref.shape)} rel err {err:.3e} (limit {tol:.1e})"
            )
            if err > tol:
                bad.append(f"{key}: relative error {err:.3e} > {tol:.1e}")
    assert not bad, f"{case.arch} stage outputs differ from Paddle's:\n" + "\n".join(
        bad + ["all stages:"] + report
    )


def test_reference_is_meaningful(case: ParityCase) -> None:
    """Guards the harness itself: Paddle's float32 and float64 runs agree with each other, the
    logits are neither degenerate nor constant, and the two inputs' predictions differ."""
    meta = json.loads((case.directory / "meta.json").read_text())
    assert meta["paddleclas"] == "2.6.0", meta
    assert sum(meta["randomized"].values()) > 0, meta
    for key in case.inputs:
        lo, hi = case.paddle[f"logits_{key}_fp32"], case.paddle[f"logits_{key}_fp64"]
        assert np.all(np.isfinite(hi)), f"{key}: non-finite Paddle logits"
        # Exploding activations (a BN calibrated to ~0 variance gave 1e5-sized logits) make
        # float32 meaningless; deep nets legitimately reach a few 1e-4 (ResNet200_vd: 2.4e-4).
        assert np.max(np.abs(hi)) < 1e3, f"{key}: exploding logits {np.max(np.abs(hi)):.3e}"
        assert relative_error(lo, hi) <= 1e-3, f"{key}: Paddle's fp32 is far from its fp64"
        assert np.std(hi, axis=1).min() > 1e-3 * np.max(np.abs(hi)), f"{key}: flat logits"
    r = case.paddle["logits_random_fp64"]
    assert relative_error(r[0], r[1]) > 1e-3, "both random inputs gave the same logits"
