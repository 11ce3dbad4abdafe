"""Tests of training.corpora (file-name parsing, discovery) and training.split.

All but the last test build tiny synthetic corpora (0.2 s of noise per clip, named as
in the official releases, quirks included) under pytest's tmp_path, so they run on any
machine. The last test uses the real shared corpora and is skipped when they are absent.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lib.labels import EMOTIONS
from training import corpora, split as split_mod
from training.corpora import (
    Clip,
    LoadResult,
    detect_corpus,
    discover,
    load_cremad,
    load_emovo,
    load_ravdess,
    load_savee,
    load_tess,
    summarize,
)
from training.split import (
    PARTITIONS,
    assign,
    build_split,
    check_disjoint,
    load_split,
    partition,
    write_split,
)

SHARED_CORPORA = Path(
    os.environ.get("SER_CORPORA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
)

_RNG = np.random.default_rng(0)


def _audio(path: Path) -> Path:
    """Write 0.2 s of 16 kHz noise to ``path`` (format from the extension, any case)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".wav": "WAV", ".flac": "FLAC"}[path.suffix.lower()]
    sf.write(str(path), (_RNG.standard_normal(3200) * 0.1).astype("float32"), 16000, format=fmt)
    return path


def _text(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)

# name relative to the corpus root -> (speaker, emotion, text, original_label)
RAVDESS_OK = {
    "Actor_01/03-01-01-01-01-01-01.wav": ("ravdess:01", "neutral", "01", "01"),
    "Actor_01/03-01-02-02-02-01-01.wav": ("ravdess:01", "neutral", "02", "02"),  # calm
    "Actor_03/03-01-05-02-01-02-03.flac": ("ravdess:03", "angry", "01", "05"),
    "Actor_03/03-01-08-02-02-02-03.FLAC": ("ravdess:03", "surprise", "02", "08"),
    "Actor_07/03-01-06-01-02-01-07.wav": ("ravdess:07", "fear", "02", "06"),
    "Actor_12/03-01-03-01-01-02-12.wav": ("ravdess:12", "happy", "01", "03"),
    "Actor_12/03-01-04-02-01-01-12.Wav": ("ravdess:12", "sad", "01", "04"),
    "Actor_24/03-01-07-01-02-02-24.wav": ("ravdess:24", "disgust", "02", "07"),
}
RAVDESS_BAD = {
    "Actor_01/03-02-03-01-01-01-01.wav": "song",
    "Actor_03/03-02-06-02-02-01-03.flac": "song",
    "Actor_01/01-01-05-01-01-01-01.wav": "video_modality",
    "Actor_07/02-01-04-01-02-01-07.wav": "video_modality",
    "Actor_01/03-01-09-01-01-01-01.wav": "unknown_emotion",
    "Actor_01/03-01-03-01-01-01-31.wav": "bad_name",  # actor 31 does not exist
    "Actor_01/03-01-03-01-01.wav": "bad_name",
    "Actor_01/recording.wav": "bad_name",
}

CREMAD_OK = {
    "AudioWAV/1001_DFA_ANG_XX.wav": ("cremad:1001", "angry", "DFA", "ANG"),
    "AudioWAV/1002_IEO_NEU_XX.wav": ("cremad:1002", "neutral", "IEO", "NEU"),
    "AudioWAV/1003_TIE_HAP_LO.flac": ("cremad:1003", "happy", "TIE", "HAP"),
    "AudioWAV/1040_ITH_SAD_X.wav": ("cremad:1040", "sad", "ITH", "SAD"),  # old misnamed file
    "AudioWAV/1091_WSI_FEA_MD.wav": ("cremad:1091", "fear", "WSI", "FEA"),
    "AudioWAV/1012_IOM_DIS_HI.wav": ("cremad:1012", "disgust", "IOM", "DIS"),
}
CREMAD_BAD = {
    "AudioWAV/1004_DFA_SUR_XX.wav": "unknown_emotion",
    "AudioWAV/1004_XYZ_ANG_XX.wav": "bad_name",  # no such sentence
    "AudioWAV/1004_DFA_ANG_ZZ.wav": "bad_name",  # no such level
    "AudioWAV/1004_DFA_ANG.wav": "bad_name",
}

TESS_OK = {
    "OAF_neutral/OA_bite_neutral.wav": ("tess:OAF", "neutral", "bite", "neutral"),
    "OAF_neutral/OAF_back_neutral.wav": ("tess:OAF", "neutral", "back", "neutral"),
    "OAF_pleasant_surprise/OAF_bean_ps.wav": ("tess:OAF", "surprise", "bean", "ps"),
    "YAF_pleasant_surprised/YAF_bean_ps.flac": ("tess:YAF", "surprise", "bean", "ps"),
    "YAF_angry/YAF_chalk_angry.wav": ("tess:YAF", "angry", "chalk", "angry"),
    "YAF_fear/YAF_Back_Fear.wav": ("tess:YAF", "fear", "back", "fear"),
    "OAF_Sad/OAF_chalk_sad.wav": ("tess:OAF", "sad", "chalk", "sad"),
    "loose/OA_bite_disgust.wav": ("tess:OAF", "disgust", "bite", "disgust"),  # no speaker folder
    "loose/YAF_bite_happy.wav": ("tess:YAF", "happy", "bite", "happy"),
}
TESS_BAD = {
    "YAF_sad/YAF_back_happy.wav": "label_conflict",
    "YAF_sad/YAF_back_bored.wav": "unknown_emotion",
    "YAF_sad/back_sad.wav": "bad_name",
}

SAVEE_OK = {
    "AudioData/DC/a01.wav": ("savee:DC", "angry", "a01", "a"),
    "AudioData/JE/sa03.wav": ("savee:JE", "sad", "sa03", "sa"),
    "AudioData/JK/su15.wav": ("savee:JK", "surprise", "su15", "su"),
    "AudioData/KL/n30.flac": ("savee:KL", "neutral", "n30", "n"),
    "ALL/KL_h02.wav": ("savee:KL", "happy", "h02", "h"),
    "ALL/JK_d05.wav": ("savee:JK", "disgust", "d05", "d"),
    "ALL/DC_f10.wav": ("savee:DC", "fear", "f10", "f"),
    "JE/SA01.WAV": ("savee:JE", "sad", "sa01", "sa"),
}
SAVEE_BAD = {
    "AudioData/XX/a01.wav": "unknown_speaker",
    "ALL/AB_a01.wav": "unknown_speaker",
    "AudioData/DC/z01.wav": "bad_name",
    "AudioData/DC/a1.wav": "bad_name",
}

EMOVO_OK = {
    "f1/dis-f1-l3.wav": ("emovo:f1", "disgust", "l3", "dis"),
    "f2/gio-f2-b1.flac": ("emovo:f2", "happy", "b1", "gio"),
    "f3/neu-f3-n5.wav": ("emovo:f3", "neutral", "n5", "neu"),
    "m1/pau-m1-d2.wav": ("emovo:m1", "fear", "d2", "pau"),
    "m2/RAB-M2-L1.WAV": ("emovo:m2", "angry", "l1", "rab"),       # codes read case-insensitively
    "m3/sor-m3-n1.flac": ("emovo:m3", "surprise", "n1", "sor"),
    "m3/tri-m3-b3.wav": ("emovo:m3", "sad", "b3", "tri"),
    "loose/tri-f1-d1.wav": ("emovo:f1", "sad", "d1", "tri"),      # no actor folder: speaker from the name
}
EMOVO_BAD = {
    "f1/dis-f2-l3.wav": "label_conflict",    # f2's clip in f1's folder
    "f1/noi-f1-l3.wav": "unknown_emotion",   # no such code
    "f1/dis-f4-l3.wav": "bad_name",          # no actor f4
    "f1/dis-f1-x9.wav": "bad_name",          # no such sentence
    "f1/dis_f1_l3.wav": "bad_name",
}

# junk present in every synthetic corpus: name -> reason
JUNK = {
    "README.txt": "not_audio",
    "info/notes.md": "not_audio",
    ".DS_Store": "hidden",
    "sub/._hidden_fork.wav": "hidden",
}

SPECS = {
    "ravdess": (RAVDESS_OK, RAVDESS_BAD, load_ravdess),
    "cremad": (CREMAD_OK, CREMAD_BAD, load_cremad),
    "tess": (TESS_OK, TESS_BAD, load_tess),
    "savee": (SAVEE_OK, SAVEE_BAD, load_savee),
    "emovo": (EMOVO_OK, EMOVO_BAD, load_emovo),
}


def _expected_skips(corpus: str, bad: dict[str, str], extra: dict[str, str] = {}) -> dict[str, int]:
    counts = Counter(f"{corpus}:{r}" for r in [*bad.values(), *JUNK.values(), *extra.values()])
    return dict(counts)


def _build(root: Path, corpus: str) -> Path:
    ok, bad, _ = SPECS[corpus]
    for name in [*ok, *bad]:
        _audio(root / name)
    for name, reason in JUNK.items():
        _text(root / name, "AppleDouble" if reason == "hidden" else "not audio")
    return root


@pytest.fixture()
def corpora_root(tmp_path: Path) -> Path:
    """A parent folder with all four synthetic corpora, named as people name them."""
    parent = tmp_path / "corpora"
    _build(parent / "RAVDESS", "ravdess")
    cremad = _build(parent / "CREMA-D", "cremad")
    _text(cremad / "AudioWAV/1005_DFA_ANG_XX.wav", LFS_POINTER)  # un-fetched git-lfs file
    _text(cremad / "AudioWAV/1007_DFA_ANG_XX.wav", b"")  # empty file
    _build(parent / "tess", "tess")
    _build(parent / "Savee", "savee")
    _build(parent / "EMOVO", "emovo")
    return parent


CREMAD_EXTRA = {"AudioWAV/1005_DFA_ANG_XX.wav": "lfs_pointer", "AudioWAV/1007_DFA_ANG_XX.wav": "empty"}
FOLDERS = {"ravdess": "RAVDESS", "cremad": "CREMA-D", "tess": "tess", "savee": "Savee", "emovo": "EMOVO"}


# --------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("corpus", sorted(SPECS))
def test_loader_parses_names_and_counts_skips(corpora_root: Path, corpus: str):
    ok, bad, loader = SPECS[corpus]
    root = corpora_root / FOLDERS[corpus]
    result = loader(root)
    assert isinstance(result, LoadResult)
    got = {Path(c.path).relative_to(root).as_posix(): c for c in result.clips}
    assert set(got) == set(ok)
    for name, (speaker, emotion, text, original) in ok.items():
        clip = got[name]
        assert (clip.corpus, clip.speaker, clip.emotion, clip.text, clip.original_label) == (
            corpus, speaker, emotion, text, original), name
        assert os.path.isabs(clip.path) and Path(clip.path).is_file()
    assert result.skipped == _expected_skips(corpus, bad, CREMAD_EXTRA if corpus == "cremad" else {})
    assert result.n_skipped == sum(result.skipped.values())
    assert [c.path for c in result.clips] == sorted(c.path for c in result.clips)


def test_clip_is_frozen_and_labels_are_product_labels(corpora_root: Path):
    clips = discover([corpora_root]).clips
    assert clips and all(c.emotion in EMOTIONS for c in clips)
    with pytest.raises(dataclasses.FrozenInstanceError):
        clips[0].emotion = "happy"  # type: ignore[misc]
    # the synthetic audio is real audio
    data, sr = sf.read(clips[0].path)
    assert sr == 16000 and len(data) == 3200


def test_loaders_accept_relative_root_and_return_absolute_paths(corpora_root: Path, monkeypatch):
    monkeypatch.chdir(corpora_root)
    result = load_savee("Savee")
    assert len(result) == len(SAVEE_OK)
    assert all(os.path.isabs(c.path) and Path(c.path).is_file() for c in result)


@pytest.mark.parametrize("loader", [load_ravdess, load_cremad, load_tess, load_savee, load_emovo, discover])
def test_missing_root_raises(tmp_path: Path, loader):
    with pytest.raises(FileNotFoundError):
        loader(tmp_path / "nope")
    _text(tmp_path / "file.wav", "x")
    with pytest.raises(NotADirectoryError):
        loader(tmp_path / "file.wav")


def test_empty_root_gives_empty_result(tmp_path: Path):
    result = load_ravdess(tmp_path)
    assert result.clips == [] and result.skipped == {}


# --------------------------------------------------------------------------- discover


def test_discover_parent_folder_finds_all_corpora(corpora_root: Path):
    _audio(corpora_root / "stray_recording.wav")  # loose audio in the parent: unclaimed
    result = discover([corpora_root])
    expected = LoadResult()
    for corpus, (_, _, loader) in SPECS.items():
        expected = expected.merge(loader(corpora_root / FOLDERS[corpus]))
    assert [c.path for c in result.clips] == [c.path for c in expected.clips]
    assert result.clips == expected.clips
    assert Counter(c.corpus for c in result.clips) == {c: len(SPECS[c][0]) for c in SPECS}
    assert result.skipped == {**expected.skipped, "unknown:unrecognized": 1}


def test_discover_sniffs_unnamed_folders_and_deduplicates(corpora_root: Path, tmp_path: Path):
    # Folders whose names say nothing: detected from the file names.
    plain = tmp_path / "plain"
    shutil.copytree(corpora_root / "RAVDESS", plain / "data_a")
    shutil.copytree(corpora_root / "tess", plain / "TESS Toronto emotional speech set data")
    shutil.copytree(corpora_root / "Savee", plain / "s1")
    shutil.copytree(corpora_root / "EMOVO", plain / "italian")
    assert detect_corpus(plain / "data_a") == "ravdess"
    assert detect_corpus(plain / "italian") == "emovo"
    assert detect_corpus(plain / "TESS Toronto emotional speech set data") == "tess"
    assert detect_corpus(plain / "s1") == "savee"
    assert detect_corpus(plain) is None  # several corpora below
    assert detect_corpus(corpora_root / "CREMA-D") == "cremad"

    result = discover(plain)  # a single path is accepted too
    assert Counter(c.corpus for c in result.clips) == {
        "ravdess": len(RAVDESS_OK), "tess": len(TESS_OK), "savee": len(SAVEE_OK), "emovo": len(EMOVO_OK)}
    by_name = {Path(c.path).name: c for c in result.clips if c.corpus == "tess"}
    assert by_name["OA_bite_neutral.wav"].speaker == "tess:OAF"

    # overlapping roots: every clip once
    both = discover([corpora_root, corpora_root / "RAVDESS"])
    assert len(both.clips) == len({c.path for c in both.clips}) == sum(len(s[0]) for s in SPECS.values())


def test_summarize_counts_per_corpus_and_emotion(corpora_root: Path):
    clips = discover(corpora_root).clips
    table = summarize(clips)
    assert list(table.columns) == [*EMOTIONS, "total", "speakers"]
    assert list(table.index) == ["ravdess", "cremad", "tess", "savee", "emovo", "total"]
    for corpus in SPECS:
        want = Counter(e for (_, e, _, _) in SPECS[corpus][0].values())
        row = table.loc[corpus]
        assert {e: int(row[e]) for e in EMOTIONS} == {e: want.get(e, 0) for e in EMOTIONS}
        assert int(row["total"]) == len(SPECS[corpus][0])
        assert int(row["speakers"]) == len({s for (s, _, _, _) in SPECS[corpus][0].values()})
    assert int(table.loc["total", "total"]) == len(clips)
    assert table.loc["cremad", "surprise"] == 0
    assert list(summarize([]).index) == ["total"]


# --------------------------------------------------------------------------- split


def test_published_split_follows_the_rules():
    split = load_split()
    assert split["version"] == 1
    assert split["ravdess"]["test"] == ["03", "04", "11", "12"]
    assert split["ravdess"]["val"] == ["07", "08"]
    # RAVDESS actors with odd ids are male: held-out partitions are balanced by sex
    assert [sum(int(a) % 2 for a in split["ravdess"][p]) for p in ("test", "val")] == [2, 1]
    assert sorted(split["ravdess"]["train"]) == sorted(
        f"{i:02d}" for i in range(1, 25) if i not in (3, 4, 11, 12, 7, 8))
    actors = range(1001, 1092)
    assert split["cremad"]["test"] == [str(a) for a in actors if (a - 1001) % 5 == 0]
    assert split["cremad"]["val"] == [str(a) for a in actors if (a - 1001) % 10 == 1]
    assert sorted(split["cremad"]["train"] + split["cremad"]["val"] + split["cremad"]["test"]) == [
        str(a) for a in actors]
    assert (split["savee"]["train"], split["savee"]["val"], split["savee"]["test"]) == (
        ["DC", "JE"], ["JK"], ["KL"])
    tess = split["tess"]
    assert tess["unit"] == "text" and tess["speakers_shared"] is True
    words = tess["train"] + tess["val"] + tess["test"]
    assert len(words) == len(set(words)) == 200
    # 20 % test and 10 % val words, stored sorted (the draw's determinism and that the file is
    # what the code regenerates: test_split_is_deterministic_and_regenerates_identically)
    assert [len(tess[p]) for p in ("train", "val", "test")] == [140, 20, 40]
    assert all(tess[p] == sorted(tess[p]) for p in PARTITIONS)
    for corpus in corpora.CORPORA:
        parts = [set(split[corpus][p]) for p in PARTITIONS]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]), corpus


def test_split_is_deterministic_and_regenerates_identically(tmp_path: Path):
    published = load_split()
    words = [w for p in PARTITIONS for w in published["tess"][p]]
    assert build_split(words) == build_split(reversed(words)) == published
    copy = tmp_path / "split.json"
    shutil.copy(split_mod.SPLIT_PATH, copy)
    # no TESS folder here: the words come from the existing file
    write_split(copy, tess_root=tmp_path / "no_tess")
    assert copy.read_text() == split_mod.SPLIT_PATH.read_text()
    assert load_split(copy) == published


def test_split_from_corpus_folder_uses_found_words(tmp_path: Path):
    tess = tmp_path / "tess"
    words = [f"word{chr(97 + i)}" for i in range(20)]
    for w in words:
        _audio(tess / "OAF_sad" / f"OAF_{w}_sad.wav")
    out = tmp_path / "s.json"
    written = write_split(out, tess_root=tess)
    assert sorted(written["tess"]["train"] + written["tess"]["val"] + written["tess"]["test"]) == words
    assert (len(written["tess"]["test"]), len(written["tess"]["val"])) == (4, 2)
    assert load_split(out) == written == build_split(words)


def test_partition_of_synthetic_corpora(corpora_root: Path):
    split = load_split()
    clips = discover(corpora_root).clips
    parts = partition(clips, split)
    assert set(parts) == set(PARTITIONS)
    assert sorted(c.path for p in parts.values() for c in p) == sorted(c.path for c in clips)
    got = {c.path: name for name, p in parts.items() for c in p}
    for clip in clips:
        assert got[clip.path] in PARTITIONS
        assert assign(clip, split) == got[clip.path]
        assert assign(clip) == got[clip.path]  # default split = published file
    expect_speaker = {
        "ravdess:01": "train", "ravdess:24": "train", "ravdess:03": "test", "ravdess:12": "test",
        "ravdess:07": "val", "cremad:1001": "test", "cremad:1091": "test", "cremad:1002": "val",
        "cremad:1012": "val", "cremad:1003": "train", "cremad:1040": "train",
        "savee:DC": "train", "savee:JE": "train", "savee:JK": "val", "savee:KL": "test",
        "emovo:f1": "train", "emovo:f2": "train", "emovo:m1": "train", "emovo:m2": "train",
        "emovo:f3": "val", "emovo:m3": "test",
    }
    for clip in clips:
        if clip.corpus == "tess":
            want = next(p for p in PARTITIONS if clip.text in split["tess"][p])
            assert got[clip.path] == want
        else:
            assert got[clip.path] == expect_speaker[clip.speaker], clip
    # the synthetic TESS words fall in all three partitions (bite/back: train, chalk: val, bean: test)
    assert {got[c.path] for c in clips if c.corpus == "tess"} == set(PARTITIONS)
    check_disjoint(parts)
    check_disjoint(parts, split, include_train_val=True)
    assert partition(clips, split) == parts  # same answer every time


def _clip(corpus: str, speaker: str, text: str = "01", emotion: str = "sad") -> Clip:
    return Clip(f"/x/{corpus}/{speaker}/{text}.wav", corpus, f"{corpus}:{speaker}", emotion, text, "x")


def test_check_disjoint_detects_leaks():
    ok = {"train": [_clip("ravdess", "01")], "val": [_clip("ravdess", "07")], "test": [_clip("ravdess", "03")]}
    check_disjoint(ok)
    with pytest.raises(ValueError, match="ravdess.*train and test"):
        check_disjoint({**ok, "test": [_clip("ravdess", "03"), _clip("ravdess", "01")]})
    with pytest.raises(ValueError, match="savee.*val and test"):
        check_disjoint({"train": [], "val": [_clip("savee", "KL")], "test": [_clip("savee", "KL")]})
    # train/val overlap is allowed unless asked for
    tv = {"train": [_clip("cremad", "1003")], "val": [_clip("cremad", "1003")], "test": []}
    check_disjoint(tv)
    with pytest.raises(ValueError, match="train and val"):
        check_disjoint(tv, include_train_val=True)
    # TESS: shared speakers are fine, shared words are not
    tess_ok = {"train": [_clip("tess", "OAF", "back")], "val": [], "test": [_clip("tess", "OAF", "bean")]}
    check_disjoint(tess_ok)
    with pytest.raises(ValueError, match="tess.*texts in both train and test.*back"):
        check_disjoint({**tess_ok, "test": [_clip("tess", "YAF", "back")]})


def test_assign_rejects_clips_outside_the_split():
    split = load_split()
    with pytest.raises(ValueError, match="no partition"):
        assign(_clip("ravdess", "99"), split)
    with pytest.raises(ValueError, match="no partition"):
        assign(_clip("tess", "OAF", "notaword"), split)
    with pytest.raises(ValueError, match="no section"):
        assign(_clip("iemocap", "Ses01F"), split)
    with pytest.raises(ValueError):
        partition([_clip("cremad", "1003"), _clip("cremad", "2000")], split)


def test_load_split_rejects_bad_files(tmp_path: Path):
    good = load_split()
    bad = json.loads(json.dumps(good))
    bad["savee"]["train"].append("KL")  # KL also in test
    (tmp_path / "a.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="KL"):
        load_split(tmp_path / "a.json")
    bad = {**good, "version": 2}
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="version"):
        load_split(tmp_path / "b.json")
    bad = {k: v for k, v in good.items() if k != "tess"}
    (tmp_path / "c.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="tess"):
        load_split(tmp_path / "c.json")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError):
        load_split(tmp_path / "d.json")
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "missing.json")


def test_split_cli_prints_counts(corpora_root: Path, capsys):
    assert split_mod.main(["--corpora", str(corpora_root)]) == 0
    out = capsys.readouterr().out
    parts = partition(discover(corpora_root).clips)
    total = [len(parts[p]) for p in PARTITIONS]
    line = next(l for l in out.splitlines() if l.startswith("total"))
    assert line.split()[1:5] == [str(n) for n in [*total, sum(total)]]
    assert "disjoint: ok" in out


# --------------------------------------------------------------------------- real corpora


@pytest.mark.skipif(
    not (SHARED_CORPORA / "ravdess").is_dir() or not (SHARED_CORPORA / "tess").is_dir(),
    reason=f"shared corpora not found at {SHARED_CORPORA} (set SER_CORPORA to their folder)",
)
def test_real_ravdess_and_tess():
    """Properties of the real copies, not today's totals (the data grows)."""
    ravdess = load_ravdess(SHARED_CORPORA / "ravdess")
    assert ravdess.clips and ravdess.skipped == {}
    per_actor = Counter(c.speaker for c in ravdess.clips)
    assert set(per_actor.values()) == {60}  # every actor present is complete: 60 speech clips
    assert all(1 <= int(s.split(":")[1]) <= 24 for s in per_actor)
    calm = Counter(c.original_label for c in ravdess.clips)["02"]
    assert calm == 8 * len(per_actor)  # calm kept, as neutral
    assert all(c.emotion == "neutral" for c in ravdess.clips if c.original_label == "02")

    tess = load_tess(SHARED_CORPORA / "tess")
    assert tess.clips and tess.skipped == {}
    assert set(Counter(c.emotion for c in tess.clips)) == set(EMOTIONS)
    assert {c.speaker for c in tess.clips} <= {"tess:OAF", "tess:YAF"}
    assert {c.text for c in tess.clips} <= {w for p in PARTITIONS for w in load_split()["tess"][p]}

    parts = partition(ravdess.clips + tess.clips)
    check_disjoint(parts, include_train_val=True)
    split = load_split()
    for p in PARTITIONS:  # every clip lands where the split file says, by actor / word
        assert all(c.speaker.split(":")[1] in split["ravdess"][p] for c in parts[p] if c.corpus == "ravdess")
        assert all(c.text in split["tess"][p] for c in parts[p] if c.corpus == "tess")
    assert sum(len(v) for v in parts.values()) == len(ravdess.clips) + len(tess.clips)


@pytest.mark.corpora
@pytest.mark.skipif(not (SHARED_CORPORA / "emovo").is_dir(),
                    reason=f"EMOVO not found at {SHARED_CORPORA / 'emovo'} (set SER_CORPORA to its parent folder)")
def test_real_emovo_is_complete_and_balanced():
    """Properties of the real copy: 6 actors x 7 emotions x 14 sentences, nothing skipped."""
    emovo = load_emovo(SHARED_CORPORA / "emovo")
    assert emovo.skipped == {}
    assert {c.speaker for c in emovo.clips} == {f"emovo:{s}" for s in corpora.EMOVO_SPEAKERS}
    cells = Counter((c.speaker, c.emotion) for c in emovo.clips)
    assert set(cells.values()) == {14} and len(cells) == 6 * len(EMOTIONS)
    assert {c.text for c in emovo.clips} == set(corpora.EMOVO_SENTENCES)
    assert detect_corpus(SHARED_CORPORA / "emovo") == "emovo"
