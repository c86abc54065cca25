"""The public API: names, errors, weights files, features_only, num_classes."""

import pytest
import torch

import ssld_zoo
from ssld_zoo.registry import get_arch
from ssld_zoo.weights.convert import StateDictMismatch


def test_list_models_patterns_and_pretrained():
    names = ssld_zoo.list_models()
    assert "resnet50_vd" in names and "resnet50_vd_ssld" in names
    assert all(n.endswith("_ssld") for n in ssld_zoo.list_models("*_ssld"))
    assert "resnet50_vd_ssld" in ssld_zoo.list_models("*_SSLD")  # case-insensitive
    pretrained = set(ssld_zoo.list_models(pretrained=True))
    assert "resnet50_vd_ssld" in pretrained
    assert not pretrained & set(ssld_zoo.list_models(pretrained=False))


def test_unknown_name_lists_close_names():
    with pytest.raises(KeyError, match="resnet50_vd"):
        ssld_zoo.load("resnet50vd")


def test_arch_without_weights_needs_pretrained_false():
    from ssld_zoo import registry
    from ssld_zoo.models.resnet_vd import ResNetVd

    def tiny_test_arch(**kw):
        return ResNetVd(18, **kw)

    registry.register_model("TinyTestArch")(tiny_test_arch)
    try:
        with pytest.raises(ValueError, match="pretrained=False"):
            ssld_zoo.load("tiny_test_arch")
        assert ssld_zoo.load("tiny_test_arch", pretrained=False).weight_card is None
    finally:
        registry._ARCHS.pop("tiny_test_arch")


def test_load_from_pth_and_safetensors_roundtrip(tmp_path):
    from safetensors.torch import save_file

    src = ssld_zoo.load("resnet18_vd", pretrained=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = src(x)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    for f in ("w.pth", "w.safetensors"):
        m = ssld_zoo.load("resnet18_vd", weights=tmp_path / f)
        assert not m.training
        with torch.no_grad():
            torch.testing.assert_close(m(x), ref, rtol=0, atol=0)


def test_wrong_architecture_names_the_right_one(tmp_path):
    torch.save(ssld_zoo.load("resnet34_vd", pretrained=False).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(StateDictMismatch) as e:
        ssld_zoo.load("resnet50_vd", weights=tmp_path / "r34.pth")
    msg = str(e.value)
    assert "missing" in msg and "r34.pth" in msg and "'resnet34_vd'" in msg


def test_pth_loading_refuses_pickled_code(tmp_path):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ValueError, match="weights_only"):
        ssld_zoo.load("resnet18_vd", weights=tmp_path / "evil.pth")
    assert not marker.exists()


def test_num_classes_keeps_backbone(tmp_path):
    src = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    m = ssld_zoo.load("resnet18_vd", weights=tmp_path / "w.pth", num_classes=7)
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    torch.testing.assert_close(m.stem[0].conv.weight, src.stem[0].conv.weight)


@pytest.mark.parametrize("arch", ["resnet18_vd", "resnet50_vd"])
def test_features_only(arch):
    m = ssld_zoo.load(arch, pretrained=False, features_only=True, out_indices=(1, -1))
    feats = m(torch.randn(1, 3, 96, 96))
    assert [f.shape[1] for f in feats] == [i.channels for i in m.feature_info]
    assert [96 // f.shape[-1] for f in feats] == [i.reduction for i in m.feature_info]
    assert not any(n.startswith("model.fc") for n, _ in m.named_parameters())


def test_out_indices_out_of_range_lists_stages():
    with pytest.raises(ValueError, match="4 stages"):
        ssld_zoo.load("resnet50_vd", pretrained=False, features_only=True, out_indices=(4,))


@pytest.mark.parametrize("arch", ["resnet50_vd"])
def test_feature_info_is_true_for_full_model(arch):
    m = get_arch(arch).builder().eval()
    feats = m.forward_stages(torch.randn(1, 3, 64, 64))
    assert len(feats) == len(m.feature_info)
    for f, info in zip(feats, m.feature_info):
        assert f.shape[1] == info.channels
        assert 64 // f.shape[-1] == info.reduction
        assert dict(m.named_modules())[info.module] is not None


def test_model_info_and_transforms():
    info = ssld_zoo.model_info("resnet50_vd_ssld")
    assert info["architecture"] == "resnet50_vd"
    assert info["weights"]["top1"] == 83.0 and info["weights"]["baseline_top1"] == 79.1
    assert info["weights"]["teacher"] == "resnext101_32x16d_wsl"
    assert 25.5 < info["params_m"] < 25.7 and 4.2 < info["gmacs"] < 4.4
    from PIL import Image

    t = ssld_zoo.transforms("resnet50_vd_ssld")
    out = t(Image.new("RGB", (300, 400), (124, 116, 104)))
    assert out.shape == (3, 224, 224)
    assert out.abs().max() < 0.05  # the ImageNet mean colour normalises to ~0


def test_class_names():
    names = ssld_zoo.class_names()
    assert len(names) == 1000 and names[0].startswith("tench")
