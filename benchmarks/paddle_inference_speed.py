"""Paddle Inference with oneDNN (PaddleClas's CPU deployment path), timed in the reference venv.

Run by ``benchmarks/inference_speed.py --deploy`` with the PaddlePaddle venv's python (it is
not importable from the project's venv):

    .venv-paddle/bin/python benchmarks/paddle_inference_speed.py --model PPLCNet_x1_0 \\
        --batch 1 8 --threads 1 2 --iters 10 [--size 224]

The PaddleClas 2.6.0 model (random weights, as the zoo's columns) is saved with
``paddle.jit.save`` as PaddleClas's ``tools/export_model.py`` does, then loaded by
``paddle.inference`` with ``enable_mkldnn()`` (oneDNN), IR optimisation on and the CPU math
library's thread count set, as PaddleClas's ``deploy/python/predict_cls.py`` configures it.
Prints one JSON line per (batch, threads): the median ms of ``--iters`` runs after 3 warm-ups.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "parity"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="PaddleClas backbone name, e.g. ResNet50_vd")
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()

    import paddle
    import paddle.inference as pi
    from paddle_reference import build, import_ppcls

    model = build(import_ppcls(), args.model)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "inference")
        spec = [paddle.static.InputSpec([None, 3, args.size, args.size], "float32", "x")]
        paddle.jit.save(paddle.jit.to_static(model, input_spec=spec), prefix)
        graph = next(Path(tmp).glob("inference.json"), None) or Path(prefix + ".pdmodel")
        for threads in args.threads:
            config = pi.Config(str(graph), prefix + ".pdiparams")
            config.disable_gpu()
            config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(threads)
            config.switch_ir_optim(True)
            config.disable_glog_info()
            predictor = pi.create_predictor(config)
            handle = predictor.get_input_handle(predictor.get_input_names()[0])
            for batch in args.batch:
                x = (
                    np.random.default_rng(0)
                    .standard_normal((batch, 3, args.size, args.size))
                    .astype(np.float32)
                )
                handle.reshape(list(x.shape))
                times = []
                for i in range(3 + args.iters):
                    t = time.perf_counter()
                    handle.copy_from_cpu(x)
                    predictor.run()
                    out = predictor.get_output_handle(predictor.get_output_names()[0])
                    out.copy_to_cpu()
                    if i >= 3:
                        times.append((time.perf_counter() - t) * 1e3)
                print(
                    json.dumps(
                        {
                            "model": args.model,
                            "batch": batch,
                            "threads": threads,
                            "size": args.size,
                            "paddle": paddle.__version__,
                            "median_ms": round(float(np.median(times)), 3),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
