"""The distillation teacher (training/teacher.py): per recipe run, out of fold, never fitted on a
run's validation or test clips; read back by training/distill.py. Generated rows, no corpora."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ser_lib.labels import EMOTIONS
from training.corpora import Clip
from training.cv import FOLDS_PATH, assign, load_folds

pytest.importorskip("sklearn")
FOUR = ("angry", "happy", "neutral", "sad")


def _clips() -> list[Clip]:
    clips = []
    for a in range(1, 25):
        for e in FOUR:
            for s in ("01", "02"):
                clips.append(Clip(f"/c/ravdess/{a:02d}-{e}-{s}.wav", "ravdess", f"ravdess:{a:02d}", e, s, ""))
    for spk in ("OAF", "YAF"):
        for word in ("chalk", "bite", "bean"):          # chalk: a TESS validation word
            for e in FOUR:
                clips.append(Clip(f"/c/tess/{spk}_{word}_{e}.wav", "tess", f"tess:{spk}", e, word, ""))
    for spk in ("1157", "1234", "2001", "2002"):       # 1157: the TurEV-DB validation speaker
        for e in FOUR:
            clips.append(Clip(f"/c/turev/{spk}_{e}.wav", "turev", f"turev:{spk}", e, "w", ""))
    return clips


def _raw(clips, reps=2, seed=0) -> np.ndarray:
    """Rows = a speaker offset + the emotion's pattern + noise, per condition."""
    rng = np.random.default_rng(seed)
    spk = sorted({c.speaker for c in clips})
    off = {s: rng.normal(scale=2.0, size=16) for s in spk}
    pat = {e: rng.normal(size=16) for e in FOUR}
    return np.vstack([np.stack([off[c.speaker] + pat[c.emotion] + rng.normal(scale=0.5, size=16) for c in clips])
                      for _ in range(reps)])


def test_groups_and_runs():
    from training.teacher import speaker_groups, recipe_runs

    clips, folds = _clips(), load_folds(FOLDS_PATH)
    groups = speaker_groups(clips, folds)
    flat = [s for g in groups for s in g]
    assert sorted(flat) == sorted({c.speaker for c in clips}) and len(flat) == len(set(flat))
    assert groups[:6] == [[f"ravdess:{a}" for a in actors] for actors in folds["ravdess"]["test"]]
    assert ["tess:OAF"] in groups and ["tess:YAF"] in groups
    assert recipe_runs(clips, folds) == ["0", "1", "2", "3", "4", "5", "loco", "final"]
    emovo = [Clip("/c/emovo/x.wav", "emovo", "emovo:f1", "angry", "b1", "")]
    assert recipe_runs(clips + emovo, folds)[-2:] == ["loco-emovo", "final"]


def test_teacher_rows_are_out_of_fold_and_only_the_runs_training_clips(tmp_path):
    from training.distill import load_teacher
    from training.teacher import teacher_probs

    clips, folds = _clips(), load_folds(FOLDS_PATH)
    raw = _raw(clips)
    runs = ["0", "loco", "final"]
    probs = teacher_probs(clips, raw, folds, runs)
    for run in runs:
        key = int(run) if run.isdigit() else run
        train = {c.path for c in clips if assign(c, folds, key) == "train"}
        assert set(probs[run]) == train                      # no validation or test clip
        p = np.array(list(probs[run].values()))
        assert np.allclose(p.sum(1), 1, atol=1e-5)
        # the emotions are learnable from these rows, so an out-of-fold teacher mostly agrees
        y = np.array([EMOTIONS.index(next(c.emotion for c in clips if c.path == k)) for k in probs[run]])
        assert (p.argmax(1) == y).mean() > 0.8
    assert "/c/turev/1157_angry.wav" not in probs["0"]      # TurEV-DB's validation speaker
    assert not any(k.startswith("/c/turev/") for k in probs["loco"])   # the LOCO run's test corpus
    # out of fold: relabelling one speaker group's clips changes everyone's teacher rows but its own
    flipped = [Clip(c.path, c.corpus, c.speaker, "sad" if c.emotion == "angry" else c.emotion, c.text, "")
               if c.speaker == "tess:OAF" else c for c in clips]
    again = teacher_probs(flipped, raw, folds, ["final"])["final"]
    oaf = [k for k in again if k.startswith("/c/tess/OAF")]
    assert all(np.allclose(again[k], probs["final"][k]) for k in oaf)
    assert not all(np.allclose(again[k], probs["final"][k]) for k in again if k not in oaf)
    # ... and a run never fits on its test or validation clips: relabelling them changes nothing
    test_val = {c.path for c in clips if assign(c, folds, 0) != "train"}
    moved = [Clip(c.path, c.corpus, c.speaker, "happy", c.text, "") if c.path in test_val else c for c in clips]
    assert teacher_probs(moved, raw, folds, ["0"])["0"] == probs["0"]
    # what training.distill reads
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps({"labels": list(EMOTIONS), "method": "test", "runs": probs}))
    loaded = load_teacher(path)
    assert set(loaded) == set(runs) and len(loaded["final"]) == len(clips)


def _wav(path) -> None:
    import soundfile as sf

    sf.write(path, np.zeros(1600, np.float32), 16000)


def test_a_teacher_file_says_what_it_was_built_from_and_a_changed_corpus_makes_it_stale(tmp_path):
    from ser_lib.encoder_head import EncoderHeadBytes
    from ser_lib.models import DEFAULT_ENCODER
    from training.config import load_conf, training_clips
    from training.corpora import discover
    from training.teacher import built_from, encoder_digest, stale_reason

    root = tmp_path / "corpora"
    for a in (1, 2):
        for code in ("01", "05"):
            p = root / "ravdess" / f"Actor_{a:02d}" / f"03-01-{code}-01-01-01-{a:02d}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            _wav(p)
    conf = load_conf(None)
    version = encoder_digest(EncoderHeadBytes.read(DEFAULT_ENCODER))
    clips = training_clips(discover([root]).clips, conf)
    assert len(clips) == 4
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps({"built_from": built_from(clips, FOLDS_PATH, version)}))
    assert stale_reason(path, [root], conf) is None
    # an EMOVO folder is not a training corpus: the teacher still matches
    (root / "emovo" / "f1").mkdir(parents=True)
    _wav(root / "emovo" / "f1" / "rab-f1-b1.wav")
    assert stale_reason(path, [root], conf) is None
    # another training clip or another encoder head: stale, saying what differs
    extra = root / "ravdess" / "Actor_03" / "03-01-03-01-01-01-03.wav"
    extra.parent.mkdir()
    _wav(extra)
    assert "clips" in stale_reason(path, [root], conf)
    extra.unlink()
    path.write_text(json.dumps({"built_from": built_from(clips, FOLDS_PATH, "0" * 64)}))
    assert "encoder_sha256" in stale_reason(path, [root], conf)
    # the encoder's digest is of what the teacher uses: the ONNX bytes and the head's feature
    # settings, not the artifact's version (rebuilt with every new CNN)
    data = EncoderHeadBytes.read(DEFAULT_ENCODER)
    head = json.loads(data.head_json)
    renamed = dataclasses.replace(data, head_json=json.dumps({**head, "training": {"version": "enchead-new"}}))
    assert encoder_digest(renamed) == version
    other = dataclasses.replace(data, head_json=json.dumps({**head, "settings": {**head["settings"], "layer": 1}}))
    assert encoder_digest(other) != version
    assert encoder_digest(dataclasses.replace(data, encoder_onnx=data.encoder_onnx + b"x")) != version
    path.write_text(json.dumps({"labels": list(EMOTIONS)}))
    assert "does not say" in stale_reason(path, [root], conf)
