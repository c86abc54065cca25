"""The ssld-zoo command line: list, info, convert, predict, errors."""

import math
from pathlib import Path

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


def _predicted_rows(out: str) -> list[tuple[int, int, str, str]]:
    """The (rank, class index, name, prob) rows of ``ssld-zoo predict``'s tables, in order."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 4 and cells[0].isdigit():
            rows.append((int(cells[0]), int(cells[1]), cells[2], cells[3]))
    return rows


def _save_image(path: Path, seed: int) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (160, 200, 3), generator=g, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    return path


def test_predict_prints_the_known_top_classes_of_the_given_weights(tmp_path, capsys):
    """A classifier whose answer is known before running it: zero weights, so the logits are its
    biases, 5 for class 207, 4 for 281, 3 for 954 and 0 for the other 997, whatever the image.
    The top 3 are then exactly those classes, with ImageNet's names for them and softmax
    probabilities e^b / (e^5 + e^4 + e^3 + 997): a model that ignored --weights, a shifted names
    list, a wrong order or no softmax prints other rows."""
    torch.manual_seed(0)
    model = ssld_zoo.load("resnet18_vd", pretrained=False)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.bias[[207, 281, 954]] = torch.tensor([5.0, 4.0, 3.0])
    torch.save(model.state_dict(), tmp_path / "w.pth")
    image = _save_image(tmp_path / "noise.png", seed=1)
    assert (
        main(
            [
                "predict",
                "resnet18_vd",
                str(image),
                "--weights",
                str(tmp_path / "w.pth"),
                "--topk",
                "3",
            ]
        )
        == 0
    )
    z = math.exp(5) + math.exp(4) + math.exp(3) + 997
    assert _predicted_rows(capsys.readouterr().out) == [
        (1, 207, "golden retriever", f"{math.exp(5) / z:.4f}"),  # 0.1216
        (2, 281, "tabby, tabby cat", f"{math.exp(4) / z:.4f}"),  # 0.0447
        (3, 954, "banana", f"{math.exp(3) / z:.4f}"),  # 0.0165
    ]


def test_predict_answers_each_image_with_the_class_its_features_point_to(tmp_path, capsys):
    """A classifier built so that the answer depends on the image, known in advance: with f1, f2
    the pooled features of two images (as predict computes them), d = f1 - f2 and m their mean,
    class 207's logit is a d.(f - m) and class 954's its negative, every other logit 0. Image 1
    is then golden retriever (logit a|d|^2/2 = 25, probability 1.0000 to four places), image 2
    banana: swapped images, a model that did not read the image or the wrong image's table
    print the other class."""
    import copy

    from ssld_zoo.preprocess import decode_image, eval_transform_of

    torch.manual_seed(0)
    model = ssld_zoo.load("resnet18_vd", pretrained=False).eval()
    images = [_save_image(tmp_path / f"{i}.png", seed=i) for i in (1, 2)]
    pooled = copy.deepcopy(model)
    pooled.reset_classifier(0)
    transform = eval_transform_of(model, "resnet18_vd").build()
    with torch.no_grad():
        f1, f2 = (pooled(transform(decode_image(p)).unsqueeze(0))[0] for p in images)
        d, m = f1 - f2, (f1 + f2) / 2
        a = 50.0 / d.dot(d)
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[207], model.fc.bias[207] = a * d, -a * d.dot(m)
        model.fc.weight[954], model.fc.bias[954] = -a * d, a * d.dot(m)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    assert (
        main(
            [
                "predict",
                "resnet18_vd",
                *map(str, images),
                "--weights",
                str(tmp_path / "w.pth"),
                "--topk",
                "1",
            ]
        )
        == 0
    )
    assert _predicted_rows(capsys.readouterr().out) == [
        (1, 207, "golden retriever", "1.0000"),
        (1, 954, "banana", "1.0000"),
    ]


def test_predict_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    torch.save(ssld_zoo.load("resnet18_vd", pretrained=False).state_dict(), tmp_path / "w.pth")
    assert main(["predict", "resnet18_vd", str(bad), "--weights", str(tmp_path / "w.pth")]) == 1
    assert "not_an_image.jpg" in capsys.readouterr().err
