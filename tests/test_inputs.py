"""Listing the input tree: symbolic link loops and several paths to one file (no Spark)."""
from __future__ import annotations

import os

import pandas as pd

from jobs import manifest
from tests.conftest import write_call

EXTS = ("wav", "flac")


def _plan(root):
    inputs = manifest.list_inputs(str(root))
    rows, tasks = manifest.plan(inputs, pd.DataFrame(columns=manifest.COLUMNS + ["seq", "key_member"]), EXTS, True)
    return inputs, {r["source_path"]: r for r in rows}, [t["source_path"] for t in tasks]


def test_a_symlink_loop_lists_each_recording_once(tmp_path):
    root = tmp_path / "IN"
    write_call(root / "a.wav", 8000, [[("speech", 1)]])
    write_call(root / "sub" / "b.flac", 8000, [[("speech", 1)]])
    os.symlink(root, root / "sub" / "loop")             # IN/sub/loop -> IN
    inputs, rows, tasks = _plan(root)
    assert tasks == [str(root / "a.wav"), str(root / "sub" / "b.flac")]
    assert [i.path for i in inputs] == tasks and not rows


def test_a_directory_link_out_of_the_tree_is_followed_once(tmp_path):
    root, elsewhere = tmp_path / "IN", tmp_path / "archive"
    write_call(elsewhere / "c.wav", 8000, [[("speech", 1)]])
    root.mkdir()
    os.symlink(elsewhere, root / "old")                 # followed: not under IN otherwise
    os.symlink(elsewhere, root / "old2")                # the same directory again: not descended into
    inputs, rows, tasks = _plan(root)
    assert tasks == [str(root / "old" / "c.wav")] and [i.path for i in inputs] == tasks


def test_two_paths_to_one_file_analyse_it_once(tmp_path):
    root = tmp_path / "IN"
    real = write_call(root / "z_real.wav", 8000, [[("speech", 1)]])
    os.symlink(real, root / "a_link.wav")               # sorts first, but is a link
    os.link(real, root / "hard.wav")                    # hard link: same file, no link on its path
    inputs, rows, tasks = _plan(root)
    assert tasks == [str(root / "hard.wav")]            # no symbolic link; first in path order
    for name in ("a_link.wav", "z_real.wav"):
        r = rows[str(root / name)]
        assert r["status"] == "skipped" and r["error"] == f"duplicate: same file as {root / 'hard.wav'}"
        assert r["call_id"] is None
    assert len(inputs) == 3                             # every path is accounted for in the manifest
