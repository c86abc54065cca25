"""Loss values against hand computations (plain Python math, not the code under test)."""

from __future__ import annotations

import math

import pytest
import torch

from ssld_zoo.distill.losses import LOSSES, build_loss

S = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
T = torch.tensor([[1.0, 1.5, -0.5], [1.0, -2.0, 0.5]])


def softmax(row, t=1.0):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_registry_has_the_losses():
    assert {"SymmetricKL", "KL", "JSD", "SoftTargetCE", "PseudoLabelCE", "DKD", "DIST"} <= set(
        LOSSES
    )


def test_symmetric_kl_matches_paddle_dmlloss_formula():
    eps = 1e-12
    want = 0.0
    for s_row, t_row in zip(S.tolist(), T.tolist()):
        s, t = softmax(s_row), softmax(t_row)
        # PaddleClas DMLLoss: t*log((t+eps)/(s+eps)) + s*log((s+eps)/(t+eps)), /2, sum classes
        want += (
            sum(
                b * math.log((b + eps) / (a + eps)) + a * math.log((a + eps) / (b + eps))
                for a, b in zip(s, t)
            )
            / 2
        )
    want /= len(S)
    got = build_loss("SymmetricKL")(S, T).item()
    assert got == pytest.approx(want, rel=1e-6)
    # symmetric, zero on equal inputs, no ground truth used
    assert build_loss("SymmetricKL")(T, S).item() == pytest.approx(want, rel=1e-6)
    assert build_loss("SymmetricKL")(S, S).item() == pytest.approx(0.0, abs=1e-7)


def test_symmetric_kl_is_finite_with_saturated_probabilities():
    s = torch.tensor([[100.0, -100.0, 0.0]])
    t = torch.tensor([[-100.0, 100.0, 0.0]])
    v = build_loss("SymmetricKL")(s, t)
    assert torch.isfinite(v)  # eps keeps log(0) out
    assert v.item() > 10


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_kl_with_temperature(temp):
    want = sum(kl(softmax(t, temp), softmax(s, temp)) for s, t in zip(S.tolist(), T.tolist()))
    want = want / len(S) * temp * temp
    assert build_loss(dict(type="KL", temperature=temp))(S, T).item() == pytest.approx(
        want, rel=1e-5
    )


def test_jsd_is_the_true_jensen_shannon_divergence():
    want = 0.0
    for s_row, t_row in zip(S.tolist(), T.tolist()):
        p, q = softmax(s_row), softmax(t_row)
        m = [(a + b) / 2 for a, b in zip(p, q)]
        want += (kl(p, m) + kl(q, m)) / 2
    want /= len(S)
    got = build_loss("JSD")(S, T).item()
    assert got == pytest.approx(want, rel=1e-5)
    assert got <= math.log(2)
    far = build_loss("JSD")(torch.tensor([[50.0, -50.0]]), torch.tensor([[-50.0, 50.0]])).item()
    assert far == pytest.approx(math.log(2), rel=1e-4)  # the bound is reached


def test_soft_target_ce():
    want = sum(
        -sum(a * math.log(b) for a, b in zip(softmax(t), softmax(s)))
        for s, t in zip(S.tolist(), T.tolist())
    ) / len(S)
    assert build_loss("SoftTargetCE")(S, T).item() == pytest.approx(want, rel=1e-6)


def test_pseudo_label_ce_uses_the_teacher_argmax_not_the_labels():
    # Teacher arg-max: class 1 in row 0, class 0 in row 1.
    want = -(math.log(softmax(S[0].tolist())[1]) + math.log(softmax(S[1].tolist())[0])) / 2
    loss = build_loss("PseudoLabelCE")
    assert loss(S, T).item() == pytest.approx(want, rel=1e-6)
    # Ground-truth labels, when given, change nothing: the loss is label-free.
    assert loss(S, T, torch.tensor([2, 2])).item() == pytest.approx(want, rel=1e-6)


def test_dkd_by_hand():
    temp, alpha, beta = 2.0, 1.0, 8.0
    want = 0.0
    for s_row, t_row in zip(S.tolist(), T.tolist()):
        g = max(range(3), key=lambda i: t_row[i])  # label-free: teacher's arg-max
        ps, pt = softmax(s_row, temp), softmax(t_row, temp)
        tckd = kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]])
        others = [i for i in range(3) if i != g]
        qs = softmax([s_row[i] for i in others], temp)
        qt = softmax([t_row[i] for i in others], temp)
        want += (alpha * tckd + beta * kl(qt, qs)) * temp * temp
    want /= len(S)
    got = build_loss(dict(type="DKD", alpha=alpha, beta=beta, temperature=temp))(S, T).item()
    assert got == pytest.approx(want, rel=1e-4)
    # with labels, the label (not the teacher's arg-max) is the target class
    labels = torch.tensor([2, -1])
    with_labels = build_loss(dict(type="DKD", temperature=temp))(S, T, labels).item()
    assert with_labels != pytest.approx(got, rel=1e-3)


def test_dist_by_hand():
    def pearson_dist(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
        den = math.sqrt(sum((x - ma) ** 2 for x in a)) * math.sqrt(sum((y - mb) ** 2 for y in b))
        return 1 - num / den

    ps = [softmax(r) for r in S.tolist()]
    pt = [softmax(r) for r in T.tolist()]
    inter = sum(pearson_dist(a, b) for a, b in zip(ps, pt)) / len(ps)
    intra = sum(pearson_dist([r[c] for r in ps], [r[c] for r in pt]) for c in range(3)) / 3
    got = build_loss("DIST")(S, T).item()
    assert got == pytest.approx(inter + intra, rel=1e-5)
    assert build_loss("DIST")(S, S).item() == pytest.approx(0.0, abs=1e-6)


def test_losses_compute_in_float32_under_bfloat16_inputs():
    for name in LOSSES:
        v = build_loss(name)(S.bfloat16(), T.bfloat16())
        assert v.dtype == torch.float32, name


def test_unknown_loss_and_parameter_errors_list_valid_ones():
    with pytest.raises(KeyError, match="valid losses: .*SymmetricKL"):
        build_loss("SymKL")
    with pytest.raises(KeyError, match="unknown parameter.*temp.*valid: temperature"):
        build_loss(dict(type="KL", temp=2))


def test_gradients_flow_to_student_only():
    s = S.clone().requires_grad_()
    t = T.clone().requires_grad_()
    build_loss("SymmetricKL")(s, t.detach()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
