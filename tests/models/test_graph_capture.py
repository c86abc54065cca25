"""Every family under graph capture and in training, as deployment and DDP need it.

One model per family (the smallest), random weights with randomised BatchNorm statistics so
that no layer is the identity. Each capture must give the eager output: TorchScript, torch.fx
(and torchvision's feature extractor built on it), torch.export with a dynamic
batch, ONNX run in onnxruntime; channels_last and batch-1 rows must equal the batch-N ones.
Training: every trainable parameter gets a gradient, for the classifier and for
``features_only`` at any ``out_indices``, and a 2-process DDP step runs without
``find_unused_parameters``.
"""

from __future__ import annotations

import os
import socket
import warnings

import pytest
import torch
import torch.nn as nn

from ssld_zoo.registry import get_arch, list_architectures
from tests.models.helpers import ONE_PER_FAMILY, SMALLEST_MODELS, random_bn_model, sample_batch

# Slow tier: minutes, not seconds; `make test-fast` leaves these out.
pytestmark = pytest.mark.slow

NAMES = SMALLEST_MODELS


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = float(want.abs().max()) or 1.0
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * scale)


def test_one_model_per_family_covers_every_family():
    families = {get_arch(n).family for n in list_architectures()}
    assert set(ONE_PER_FAMILY) == families
    assert all(get_arch(n).family == f for f, n in ONE_PER_FAMILY.items())


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_equals_eager_for_classifier_and_features(name):
    model, x = random_bn_model(name), sample_batch()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation
        scripted = torch.jit.script(model)
        _close(scripted(x), model(x))
        _close(scripted.forward_features(x), model.forward_features(x))
        pyramid = random_bn_model(name, features_only=True, out_indices=(0, -1))
        for got, want in zip(torch.jit.script(pyramid)(x), pyramid(x)):
            _close(got, want)
    # The model itself is left as it was (scripting packs flat blocks in a copy).
    assert list(model.state_dict()) == list(random_bn_model(name).state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_fx_trace_and_torchvision_feature_extractor(name):
    from torchvision.models.feature_extraction import create_feature_extractor

    model, x = random_bn_model(name), sample_batch()
    with torch.no_grad():
        _close(torch.fx.symbolic_trace(model)(x), model(x))
        stages = model.forward_stages(x)
        pyramid = random_bn_model(name, features_only=True)
        for got, want in zip(torch.fx.symbolic_trace(pyramid)(x), stages):
            _close(got, want)
        if any("#" in f.module for f in model.feature_info):
            return  # HRNet: its stages are branches of one module's list output, not nodes
        # Nodes named after the stage modules (the first and last stage).
        picks = {0: model.feature_info[0].module, len(stages) - 1: model.feature_info[-1].module}
        got = create_feature_extractor(model, return_nodes={m: m for m in picks.values()})(x)
    for i, module in picks.items():
        _close(got[module], stages[i])


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_with_a_dynamic_batch(name):
    # (A static-shape export is the same capture with the batch fixed; the one-per-family ONNX
    # test below exports through torch.export too.)
    model, x = random_bn_model(name), sample_batch()
    with torch.no_grad():
        batch = torch.export.Dim("batch", min=1, max=64)
        exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
        for n in (1, 5):
            _close(exported.module()(sample_batch(n)), model(sample_batch(n)))


@pytest.mark.parametrize("name", NAMES)
def test_onnx_in_onnxruntime_equals_eager(name, tmp_path):
    import onnxruntime as ort  # a test dependency (pyproject [test] -> [export])

    model, x = random_bn_model(name), sample_batch()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            input_names=["x"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = sample_batch(3)
    got = torch.from_numpy(session.run(None, {"x": x3.numpy()})[0])
    with torch.no_grad():
        _close(got, model(x3), rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_and_single_rows_equal_the_batch(name):
    model, x = random_bn_model(name), sample_batch(3)
    with torch.no_grad():
        ref = model(x)
        rows = torch.cat([model(x[i : i + 1]) for i in range(3)])
        cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    _close(rows, ref)
    _close(cl, ref)


def _params_without_grad(model: nn.Module, x: torch.Tensor) -> list[str]:
    model.train()
    out = model(x)
    loss = sum(o.float().mean() for o in out) if isinstance(out, list) else out.mean()
    loss.backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_gets_a_gradient(name):
    assert _params_without_grad(random_bn_model(name), sample_batch()) == []
    n = len(random_bn_model(name).feature_info)
    full = sum(p.numel() for p in random_bn_model(name).parameters())
    for i in range(n):
        pyramid = random_bn_model(name, features_only=True, out_indices=(i,))
        assert _params_without_grad(pyramid, sample_batch()) == [], f"out_indices=({i},)"
        kept = sum(p.numel() for p in pyramid.parameters())
        assert kept < full  # the classifier is gone, and the stages after i
    early = random_bn_model(name, features_only=True, out_indices=(0,))
    late = random_bn_model(name, features_only=True, out_indices=(n - 1,))
    assert set(early.state_dict()) <= set(late.state_dict())


@pytest.mark.parametrize(
    "name", ["resnet18_vd", "mobilenetv3_small_x0_35", "pplcnet_x0_25", "ghostnet_x0_5"]
)
def test_features_only_runs_only_the_stages_it_returns(name):
    full = random_bn_model(name)
    pyramid = random_bn_model(name, features_only=True, out_indices=(1,))
    ran = set()
    names = {m: n for n, m in pyramid.model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda m, i, o: ran.add(names[m])) for m in pyramid.model.modules()
    ]
    with torch.no_grad():
        (out,) = pyramid(sample_batch())
        want = full.forward_stages(sample_batch())[1]
    for h in hooks:
        h.remove()
    _close(out, want)
    stage_end = full.feature_info[2].module  # the end of the next stage never runs
    assert stage_end not in ran
    with pytest.raises(AttributeError):
        pyramid.model.get_submodule(stage_end)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, names: list[str], errors) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        for name in names:
            for kwargs in ({}, {"features_only": True, "out_indices": (1,)}):
                model = random_bn_model(name, **kwargs).train()
                ddp = DDP(model, find_unused_parameters=False)
                opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
                # Two steps: an unused parameter makes DDP fail at the second one.
                for step in range(2):
                    out = ddp(sample_batch() + rank + step)
                    loss = sum(o.mean() for o in out) if isinstance(out, list) else out.mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    except Exception as e:  # reported to the parent, which fails the test with it
        errors.put(f"rank {rank}: {name} {kwargs}: {type(e).__name__}: {e}")
    finally:
        dist.destroy_process_group()


def test_ddp_without_find_unused_parameters_every_family():
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), NAMES, errors),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
