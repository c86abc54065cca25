"""The fast online teacher (BatchNorm folding, inference mode, channels_last, bf16, compile)
and batch mixing seen by both models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ssld_zoo
from ssld_zoo.deploy.fuse import fold_batchnorm
from ssld_zoo.distill.mixing import BatchMix, mix_probs
from ssld_zoo.distill.teacher import OnlineTeacher, resolve_precision

# fold_batchnorm pairs layers by tracing, whatever the family names them: one of each family.
from tests.models.helpers import SMALLEST_MODELS, randomise_bn


@pytest.mark.parametrize("name", SMALLEST_MODELS)
@torch.no_grad()
def test_folding_batchnorm_is_exact_for_every_family(name):
    torch.manual_seed(0)
    model = randomise_bn(ssld_zoo.load(name, pretrained=False, num_classes=10)).eval()
    reference = copy.deepcopy(model)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model, torch.randn(1, 3, 64, 64))
    left = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded > 0 and left == bns - folded
    # NextViT normalises the inputs of its attention and MLP blocks (no convolution before)
    share = 0.5 if name.startswith("nextvit") else 0.9
    assert folded >= share * bns, f"{name}: only {folded} of {bns} BatchNorms folded"
    x = torch.randn(2, 3, 96, 96)  # another input and size than the probe
    want, got = reference(x), model(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())), float(
        (got - want).abs().max()
    )


class _ConvReadTwice(nn.Module):
    """A convolution whose output feeds its BatchNorm and, unnormalised, a residual."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_folding_refuses_what_it_cannot_fold_and_leaves_the_model_as_it_was():
    m = randomise_bn(_ConvReadTwice())
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(m.train(), torch.randn(1, 3, 8, 8))
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match="left unfolded"):
        fold_batchnorm(m, torch.randn(1, 3, 8, 8))
    assert isinstance(m.bn, nn.BatchNorm2d) and m.state_dict().keys() == before.keys()
    assert all(torch.equal(m.state_dict()[k], v) for k, v in before.items())


def test_precision_auto_is_fp32_on_cpu_and_bad_names_are_refused():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="'int8'"):
        resolve_precision("int8", "cpu")
    with pytest.raises(ValueError, match="bn_mode"):
        OnlineTeacher(nn.Conv2d(3, 3, 1), bn_mode="frozen")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return randomise_bn(ssld_zoo.load("resnet18_vd", pretrained=False, num_classes=10)).eval()


def test_online_teacher_equals_the_plain_teacher_and_leaves_the_seed_alone(resnet):
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        want = resnet(x)
    torch.manual_seed(123)
    teacher = OnlineTeacher(copy.deepcopy(resnet), probe_size=64)
    drawn = torch.rand(())
    torch.manual_seed(123)
    assert torch.equal(drawn, torch.rand(())), "building the teacher consumed the RNG"
    assert teacher.folded > 15 and not any(p.requires_grad for p in teacher.parameters())
    teacher.train()  # an eval-BN teacher stays in eval mode whatever the runner asks
    assert not teacher.training and not teacher.model.training
    got = teacher(x)
    assert got.dtype == torch.float32 and not got.is_inference() and not got.requires_grad
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    # the state dict holds the folded model once, under model.
    keys = list(teacher.state_dict())
    assert keys and all(k.startswith("model.") for k in keys)
    assert not any("running_mean" in k for k in keys)


def test_bf16_teacher_returns_fp32_logits_a_student_loss_can_backprop_through(resnet):
    x = torch.randn(4, 3, 64, 64)
    fp32 = OnlineTeacher(copy.deepcopy(resnet), precision="fp32", probe_size=64)(x)
    bf16 = OnlineTeacher(copy.deepcopy(resnet), precision="bf16", probe_size=64)(x)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # it did run in bf16
    p32, p16 = F.softmax(fp32, 1), F.softmax(bf16, 1)
    assert float((p32 - p16).abs().max()) < 0.05
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10))
    loss = F.kl_div(F.log_softmax(student(x), 1), p16, reduction="batchmean")
    loss.backward()
    assert student[1].weight.grad is not None and torch.isfinite(student[1].weight.grad).all()


def test_a_batch_statistics_teacher_is_not_folded_and_follows_train_mode(resnet):
    t = OnlineTeacher(copy.deepcopy(resnet), bn_mode="train", probe_size=64)
    assert t.folded == 0 and any(isinstance(m, nn.BatchNorm2d) for m in t.modules())
    t.train()
    assert t.model.training
    t.eval()
    assert not t.model.training


def test_compiled_teacher_equals_eager_and_deep_copies(resnet):
    x = torch.randn(2, 3, 64, 64)
    eager = OnlineTeacher(copy.deepcopy(resnet), probe_size=64)
    compiled = OnlineTeacher(copy.deepcopy(resnet), probe_size=64, compile=dict(backend="eager"))
    assert torch.allclose(compiled(x), eager(x), atol=1e-5)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no second copy
    twin = copy.deepcopy(compiled)  # what mmengine's EMA does to the whole model
    assert torch.allclose(twin(x), eager(x), atol=1e-5)


def test_channels_last_teacher_takes_either_layout(resnet):
    x = torch.randn(2, 3, 64, 64)
    t = OnlineTeacher(copy.deepcopy(resnet), channels_last=True, probe_size=64)
    conv = next(m for m in t.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(t(x), t(x.contiguous(memory_format=torch.channels_last)))


# --- mixing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "both 0"),
        (dict(mixup_alpha=-1), "mixup_alpha"),
        (dict(cutmix_alpha="1"), "cutmix_alpha"),
        (dict(mixup_alpha=1, prob=1.5), "prob"),
        (dict(mixup_alpha=1, switch_prob=-0.1), "switch_prob"),
    ],
)
def test_bad_mix_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchMix(**kwargs)


def test_mixup_blends_each_sample_with_its_partner():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 8, 8)
    mixed, perm, lam = BatchMix(mixup_alpha=0.8)(x)
    assert 0 < lam < 1 and sorted(perm.tolist()) == list(range(6))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])


def test_cutmix_pastes_a_box_and_lam_is_the_area_kept():
    torch.manual_seed(3)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 16, 16).clone()
    x[0] = 10.0  # every sample differs from every other, so pasted pixels are visible
    mixed, perm, lam = BatchMix(cutmix_alpha=1.0)(x)
    for i in range(4):
        if perm[i] == i:
            continue
        kept = float((mixed[i] == x[i]).float().mean())
        assert kept == pytest.approx(lam)
    p = torch.softmax(torch.randn(4, 10), 1)
    q = mix_probs(p, perm, lam)
    assert torch.allclose(q.sum(1), torch.ones(4)) and torch.allclose(
        q, lam * p + (1 - lam) * p[perm]
    )


def test_mixing_replays_under_the_seed_and_prob_zero_leaves_the_batch():
    x = torch.randn(4, 3, 8, 8)
    mix = BatchMix(mixup_alpha=0.2, cutmix_alpha=1.0)
    torch.manual_seed(5)
    a = mix(x)
    torch.manual_seed(5)
    b = mix(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    same, perm, lam = BatchMix(mixup_alpha=1.0, prob=0.0)(x)
    assert same is x and perm is None and lam == 1.0


def test_the_online_teacher_sees_the_mixed_batch_the_student_sees():
    """Function matching: with data.mix, both models get the same mixed images."""
    from ssld_zoo.distill.distiller import Distiller
    from tests.distill.conftest import TINY_ARCH

    torch.manual_seed(0)
    d = Distiller(
        student=dict(name=TINY_ARCH, num_classes=10),
        teacher=dict(name=TINY_ARCH, pretrained=False, num_classes=10),
        mix=dict(mixup_alpha=1.0),
    )
    seen = {}
    d.teacher.register_forward_pre_hook(lambda m, a: seen.__setitem__("teacher", a[0]))
    d.student.register_forward_pre_hook(lambda m, a: seen.__setitem__("student", a[0]))
    x = torch.randn(4, 3, 32, 32)
    d.train()
    d.loss(x, None)["loss_kd"].backward()
    assert torch.equal(seen["teacher"], seen["student"])
    assert not torch.equal(seen["student"], x)
