"""The ssld-zoo command line: list, info, convert, predict, errors."""
import os
from pathlib import Path

import pytest
import torch

import ssld_zoo
from ssld_zoo.cli.main import main
from ssld_zoo.weights.convert import torch_to_paddle
from ssld_zoo.weights.pdparams import write_pdparams


def test_list_filters(capsys):
    assert main(["list", "*_ssld"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_vd_ssld" in out and "resnet50_vd " not in out.replace("resnet50_vd_ssld", "")


def test_info_shows_card(capsys):
    assert main(["info", "resnet50_vd_ssld"]) == 0
    out = capsys.readouterr().out
    for text in ("ResNet50_vd", "83.000", "79.100", "resnext101_32x16d_wsl", "bilinear", "256"):
        assert text in out


def test_unknown_name_is_a_clear_error(capsys):
    assert main(["info", "resnet50_vdd"]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'resnet50_vdd'" in err and "resnet50_vd" in err


def test_convert_pdparams_to_safetensors(tmp_path, capsys):
    from safetensors.torch import load_file

    model = ssld_zoo.load("resnet18_vd", pretrained=False)
    src = tmp_path / "ResNet18_vd_pretrained.pdparams"
    write_pdparams(torch_to_paddle(model), src)
    out = tmp_path / "r18.safetensors"
    assert main(["convert", str(src), "--model", "resnet18_vd", "-o", str(out)]) == 0
    state = load_file(str(out))
    torch.testing.assert_close(state["fc.weight"], model.fc.weight)
    # the wrong architecture: a clear error and no output file
    bad = tmp_path / "bad.safetensors"
    assert main(["convert", str(src), "--model", "resnet50_vd", "-o", str(bad)]) == 1
    assert "resnet18_vd" in capsys.readouterr().err and not bad.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_predict_prints_class_names(tmp_path, capsys, photo):
    torch.manual_seed(0)
    model = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    assert main(["predict", "resnet18_vd", str(photo), "--weights", str(tmp_path / "w.pth"),
                 "--topk", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n│ ") >= 3 and any(n.split(",")[0] in out for n in ssld_zoo.class_names())


def test_predict_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    torch.save(ssld_zoo.load("resnet18_vd", pretrained=False).state_dict(), tmp_path / "w.pth")
    assert main(["predict", "resnet18_vd", str(bad), "--weights", str(tmp_path / "w.pth")]) == 1
    assert "not_an_image.jpg" in capsys.readouterr().err
