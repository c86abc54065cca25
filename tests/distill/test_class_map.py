"""Class maps for a teacher with more classes than the student: indices, labels, named maps."""

from __future__ import annotations

import pytest

from ssld_zoo.distill.class_map import read_class_map, resolve_class_map


def _wnids(label_set: str) -> list[str]:
    from timm.data import ImageNetInfo

    return list(ImageNetInfo(label_set).label_names())


def test_imagenet22k_to_1k_names_the_same_synset_for_every_class():
    got = resolve_class_map("imagenet-22k-ms->imagenet-1k", 21842)
    in22k, in1k = _wnids("imagenet-22k-ms"), _wnids("imagenet-1k")
    assert len(got) == 1000 and len(set(got)) == 1000
    assert [in22k[i] for i in got] == in1k
    # the 21841-class list has every 1k class but the teddy bear: refused, naming it
    with pytest.raises(ValueError, match=r"'n04399382' is not a class of imagenet-22k"):
        resolve_class_map("imagenet-22k->imagenet-1k", 21841)
    mapped = resolve_class_map([w for w in in1k if w != "n04399382"], 21841)
    assert [_wnids("imagenet-22k")[i] for i in mapped] == [w for w in in1k if w != "n04399382"]


def test_labels_are_wordnet_ids_or_imagenet1k_names(tmp_path):
    # Imagenette's folders are WordNet ids; names read as ssld-zoo prints them (predict)
    assert resolve_class_map(["n01440764", "n02102040", "goldfish"], 1000) == [0, 217, 1]
    labels = tmp_path / "subset.txt"
    labels.write_text("n03000684\nn03417042\n")
    assert read_class_map(str(labels)) == ["n03000684", "n03417042"]
    assert resolve_class_map(str(labels), 1000) == [491, 569]
    indices = tmp_path / "indices.txt"
    indices.write_text("3\n1\n")
    assert read_class_map(str(indices)) == [3, 1]
    assert resolve_class_map(str(indices), 10) == [3, 1]


@pytest.mark.parametrize(
    "class_map, classes, message",
    [
        (
            "imagenet-22k->imagenet-1k",
            1000,
            r"teacher of imagenet-22k \(21841 classes\), but "
            r"the teacher predicts 1000",
        ),
        (["n01440764", "n99999999"], 1000, r"'n99999999' is not a class of imagenet-1k"),
        (["n01440764"], 10, r"need a teacher of a known label set .* predicts 10"),
        ([0, 10], 10, r"indices in \[0, 10\)"),
        ([], 10, r"empty"),
        (["crane"], 1000, r"'crane' names several classes of imagenet-1k"),
        ("no_such_file.txt", 10, r"named map .* or a text file"),
    ],
)
def test_a_bad_map_is_one_line_naming_it(class_map, classes, message):
    with pytest.raises(ValueError, match=r"model\.teacher\.class_map.*" + message):
        resolve_class_map(class_map, classes)
