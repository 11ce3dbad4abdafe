"""The emotion head on the frozen encoder: serving (ser_lib/encoder_head.py) against training
(training/encoder_head.py). The artifact test needs the [train] install and skips without it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lib.encoder import ENCODER_LICENSE_FILE
from ser_lib.encoder_head import (HEAD_FILE, EncoderHead, EncoderModel, SegmentSettings, fuse, prepare,
                                  speaker_standardize)
from ser_lib.errors import ArtifactError
from ser_lib.labels import EMOTIONS
from ser_lib.synth import speech_like


def test_head_probabilities_are_sklearns_and_survive_json():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from training.encoder_head import fit_head, group_weights

    rng = np.random.default_rng(0)
    y = np.repeat([0, 3, 4, 5], 30)                      # 4 of the 7 emotions present
    x = rng.normal(size=(len(y), 12)) + y[:, None] * 0.3
    groups = ["a"] * 60 + ["b"] * 60
    head = fit_head(x, y, groups, c=0.1)
    # the same fit by hand: scikit-learn's probabilities over the classes present, 0 elsewhere
    z = (x - x.mean(0)) / x.std(0)
    lr = LogisticRegression(C=0.1, max_iter=3000).fit(z, y, sample_weight=group_weights(groups, y))
    got = head.predict(x)
    np.testing.assert_allclose(got[:, lr.classes_], lr.predict_proba(z), atol=1e-5)
    assert np.all(got[:, [1, 2, 6]] == 0) and np.allclose(got.sum(1), 1)
    again = EncoderHead.from_json(head.to_json())
    np.testing.assert_allclose(again.predict(x), got, atol=1e-6)
    assert again.labels == list(EMOTIONS) and again.settings == SegmentSettings()
    bad = json.loads(head.to_json())
    bad["coef"] = bad["coef"][:3]
    with pytest.raises(ArtifactError, match="shapes"):
        EncoderHead.from_json(json.dumps(bad))
    with pytest.raises(ArtifactError):
        EncoderHead.from_json(json.dumps({"format": "other"}))


def test_group_weights_equalise_every_group_and_label():
    from training.encoder_head import group_weights

    w = group_weights(["a"] * 5 + ["b"] * 2, np.array([0, 0, 0, 1, 1, 0, 1]))
    totals = [w[:3].sum(), w[3:5].sum(), w[5:6].sum(), w[6:].sum()]
    np.testing.assert_allclose(totals, totals[0])
    assert w.mean() == pytest.approx(1.0)


def test_speaker_standardize_and_prepare():
    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, size=(40, 5))
    z = speaker_standardize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    assert np.all(speaker_standardize(x[:1]) == 0)
    with pytest.raises(ValueError):
        speaker_standardize(np.zeros((0, 5)))
    # the level does not matter: a recording 20 dB down is scaled to the same RMS
    wav = speech_like(1.0, 16000, rng)
    a, b = prepare(wav, SegmentSettings()), prepare(wav * 0.1, SegmentSettings())
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert 20 * np.log10(np.sqrt(np.mean(a.astype(float) ** 2))) == pytest.approx(-30, abs=0.01)


def test_loading_refuses_an_artifact_without_its_licence_notice(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"x")
    (tmp_path / HEAD_FILE).write_text("{}")
    with pytest.raises(ArtifactError, match=ENCODER_LICENSE_FILE):
        EncoderModel(tmp_path)


def _tiny_corpus(root: Path) -> None:
    """RAVDESS-named clips of two actors, four emotions, speech-like audio whose pitch and level
    follow the emotion (so the head has something to learn)."""
    rng = np.random.default_rng(3)
    codes = {"01": -30, "03": -18, "04": -34, "05": -12}     # neutral, happy, sad, angry: level in dBFS
    for actor in (1, 2):
        for code, level in codes.items():
            for rep in ("01", "02"):
                for statement in ("01", "02"):
                    p = root / "ravdess" / f"Actor_{actor:02d}" / f"03-01-{code}-01-{statement}-{rep}-{actor:02d}.wav"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(p, speech_like(1.8, 16000, rng, level_db=level), 16000, subtype="PCM_16")


def test_artifact_serves_what_training_fitted(tmp_path):
    pytest.importorskip("torch", reason="needs the [train] install (torch) to export the encoder")
    pytest.importorskip("resemblyzer", reason="needs the [train] install (resemblyzer)")
    from training.corpora import discover
    from training.dataset import clip_samples
    from training.encoder_head import build, clip_features, standardize_by_speaker

    _tiny_corpus(tmp_path / "corpora")
    out = build(tmp_path / "artifact", [tmp_path / "corpora"], progress=False)
    assert "Apache License" in (out / ENCODER_LICENSE_FILE).read_text()
    model = EncoderModel(out)
    assert model.head.training["conditions"] == ["8k", "telephone"]
    assert model.head.training["n_clips"] * 2 == model.head.training["n_train"]
    assert model.labels == list(EMOTIONS)
    clips = discover(tmp_path / "corpora").clips
    # training's features (clip_features + per-speaker standardisation) through the head ...
    x = standardize_by_speaker(clip_features(clips, model.encoder, model.head.settings),
                               [c.speaker for c in clips])
    want = model.head.predict(x)
    # ... equal serving's: one channel = one speaker's clips, given as samples at the job's 8 kHz
    for actor in ("ravdess:01", "ravdess:02"):
        idx = [i for i, c in enumerate(clips) if c.speaker == actor]
        got = model.predict_channel([clip_samples(clips[i].path, 8000) for i in idx], 8000)
        np.testing.assert_allclose(got, want[idx], atol=1e-5)
        assert got.shape == (len(idx), len(EMOTIONS)) and np.allclose(got.sum(1), 1, atol=1e-5)
    # emotions the corpus lacks are never predicted
    assert np.all(want[:, [EMOTIONS.index(e) for e in ("disgust", "fear", "surprise")]] < 1e-6)
    # late fusion with the CNN's probabilities of the same windows: the weighted mean
    idx = [i for i, c in enumerate(clips) if c.speaker == "ravdess:01"]
    cnn = np.random.default_rng(0).dirichlet(np.ones(len(EMOTIONS)), size=len(idx)).astype(np.float32)
    fused = model.predict_channel([clip_samples(clips[i].path, 8000) for i in idx], 8000, cnn_probs=cnn)
    np.testing.assert_allclose(fused, 0.5 * cnn + 0.5 * want[idx], atol=1e-5)
    with pytest.raises(ValueError):
        model.predict_channel([], 16000)


def test_fuse_is_the_weighted_mean_and_checks_its_inputs():
    a, b = np.eye(3, dtype=np.float32), np.full((3, 3), 1 / 3, np.float32)
    np.testing.assert_allclose(fuse(a, b, 0.25), 0.25 * a + 0.75 * b)
    np.testing.assert_allclose(fuse(a, b, 1.0), a)
    with pytest.raises(ValueError, match="shapes"):
        fuse(a, b[:2], 0.5)
    with pytest.raises(ValueError, match="cnn_weight"):
        fuse(a, b, 1.5)
