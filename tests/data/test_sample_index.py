"""The sample index: the compact SampleTable, and list files read with numpy exactly as the
line-by-line reader reads them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ssld_zoo.data.images import _list_file_paths, scan_unlabeled
from ssld_zoo.data.samples import SampleTable


def test_sample_table_round_trips_and_is_compact():
    paths = [
        ("/data/train/n01/a.JPEG", 3),
        ("/data/train/n01/b c.jpg", 3),
        ("rel/x.tar#k.jpg", -1),
        ("/d/\udcff-name.png", 7),  # a name that is not UTF-8 (surrogateescape)
        ("plain.jpg", 0),
    ]
    table = SampleTable(paths)
    table.extend_shard(
        "/s/t.tar", b"a.jpgbb.jpg", np.array([5, 11]), [1, 2], [512, 2048], [700, 30]
    )
    table.append("/after/z.jpg", 4)
    want = paths + [("/s/t.tar#a.jpg", 1), ("/s/t.tar#bb.jpg", 2), ("/after/z.jpg", 4)]
    assert list(table) == want and table[1:3] == want[1:3] and table[-1] == want[-1]
    assert table.labels.tolist() == [y for _, y in want]
    assert [table.location(i) for i in (0, 5, 6, 7)] == [None, (512, 700), (2048, 30), None]
    picked = table.select([6, 0])
    assert list(picked) == [want[6], want[0]] and picked.location(0) == (2048, 30)
    from ssld_zoo.distill.cache.format import images_digest

    assert images_digest(table) == images_digest(list(table))  # the numpy path, the same bytes
    lines = b"".join(table.path_lines(rows=3))
    assert lines == b"".join(os.fsencode(p) + b"\n" for p, _ in want)
    with pytest.raises(IndexError):
        table[len(want)]
    big = SampleTable(
        (f"/data/imagenet/train/n{i // 1000:08d}/img_{i}.JPEG", i % 1000) for i in range(20000)
    )
    assert big.nbytes / len(big) < 40  # the folder prefix is stored once per folder


LISTS = {
    "plain": "/a/b.jpg\nrel/c.jpg\n\n# a comment\n/x y/z.jpg\tcls\t0.5\nno_newline.jpg",
    "columns": "a.jpg\t1\t0.9\nb.jpg\t2\t0.8\n",
    "respelled": "./a.jpg\nb//c.jpg\nd/./e.jpg\n",
    "spaces": " a.jpg\nb.jpg \n\tc.jpg\n",
    "crlf": "a.jpg\r\nb.jpg\r\n",
    "hidden": "/d/.hidden.jpg\n",
    "unicode": "/d/\u00e9t\u00e9.jpg\n\u00e9.jpg\n",
    "trailing_slash": "a/\nb.jpg\n",
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_list_files_read_as_the_line_reader_reads_them(tmp_path, monkeypatch, name):
    (tmp_path / "sub").mkdir()
    for folder in (tmp_path, tmp_path / "sub"):
        f = folder / f"{name}.txt"
        f.write_text(LISTS[name], encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        for src in (f, Path(os.path.relpath(f))):  # absolute, and relative to the cwd
            assert scan_unlabeled(src) == list(_list_file_paths(src)), src


def test_a_long_list_is_read_in_chunks(tmp_path):
    from ssld_zoo.data.images import _add_list_file

    f = tmp_path / "long.txt"
    f.write_text("".join(f"/data/n{i % 7}/img_{i}.JPEG\t{i % 7}\n" for i in range(5000)))
    table = SampleTable([("/first.jpg", 3)])
    _add_list_file(table, f, chunk=4096)  # many chunks, lines cut at their edges
    assert list(table)[1:] == [(p, -1) for p in _list_file_paths(f)] and table[0] == (
        "/first.jpg",
        3,
    )
    # a line only the line reader handles, late in the file: the table starts that file over
    f.write_text(f.read_text() + " /spaced.jpg\n")
    table = SampleTable([("/first.jpg", 3)])
    _add_list_file(table, f, chunk=4096)
    assert len(table) == 5002 and table[-1] == ("/spaced.jpg", -1) and table[0] == ("/first.jpg", 3)
