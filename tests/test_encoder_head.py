"""The emotion head on the frozen encoder: serving (ser_lib/encoder_head.py) against training
(training/encoder_head.py). The artifact test needs the [train] install and skips without it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lib.encoder import ENCODER_LICENSE_FILE
from ser_lib.encoder_head import (HEAD_FILE, HEAD_FORMAT_VERSION, EncoderHead, EncoderModel, SegmentSettings,
                                  ShortChannelHead, fuse, pool_context, prepare, speaker_standardize)
from ser_lib.errors import ArtifactError
from ser_lib.labels import EMOTIONS
from ser_lib.synth import speech_like


def test_pool_context_stays_within_runs_of_consecutive_windows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    # two runs at a 1 s hop: windows at 0-2 s, then (after left-out non-speech windows) 5-8 s
    start = np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 8.0])
    got = pool_context(x, start, 1.0, 3)
    want = [x[0:2].mean(0), x[0:3].mean(0), x[1:3].mean(0),
            x[3:5].mean(0), x[3:6].mean(0), x[4:7].mean(0), x[5:7].mean(0)]
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6)
    np.testing.assert_allclose(pool_context(x, start, 1.0, 5)[4], x[3:7].mean(0), rtol=1e-6)
    one = pool_context(x, start, 1.0, 1)
    np.testing.assert_array_equal(one, x)
    assert one is not x and got.dtype == np.float32
    assert pool_context(x[:1], start[:1], 1.0, 3).shape == (1, 4)
    for bad in ((x, start, 1.0, 2), (x, start, 0.0, 3), (x, start[:-1], 1.0, 3)):
        with pytest.raises(ValueError):
            pool_context(*bad)
    with pytest.raises(ValueError, match="context_windows"):
        SegmentSettings(context_windows=2)


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


def _small_head(**kw) -> EncoderHead:
    rng = np.random.default_rng(1)
    return EncoderHead(list(EMOTIONS), rng.normal(size=4), rng.uniform(0.5, 2, 4), rng.normal(size=(7, 4)),
                       rng.normal(size=7), **kw)


def test_fusion_rule_and_temperature_survive_json_and_old_files_read_as_the_plain_mean():
    head = _small_head(fusion="log", temperature=0.64)
    d = json.loads(head.to_json())
    assert d["format_version"] == HEAD_FORMAT_VERSION and d["fusion"] == "log" and d["temperature"] == 0.64
    again = EncoderHead.from_json(head.to_json())
    assert (again.fusion, again.temperature, again.cnn_weight) == ("log", 0.64, 0.5)
    # a format version 1 file (no fusion / temperature keys) reads as the mean it was served with
    v1 = {k: v for k, v in d.items() if k not in ("fusion", "temperature")} | {"format_version": 1}
    old = EncoderHead.from_json(json.dumps(v1))
    assert (old.fusion, old.temperature) == ("linear", 1.0)
    # a version 2 or 3 file must say both; bad values are refused
    for key in ("fusion", "temperature"):
        with pytest.raises(ArtifactError, match=key):
            EncoderHead.from_json(json.dumps({k: v for k, v in d.items() if k != key}))
    for bad in ({"fusion": "max"}, {"temperature": 0.0}, {"temperature": -1.0},
                {"format_version": HEAD_FORMAT_VERSION + 1}, {"settings": d["settings"] | {"context_windows": 4}}):
        with pytest.raises(ArtifactError):
            EncoderHead.from_json(json.dumps(d | bad))


def test_context_windows_survive_json_and_older_files_read_as_served():
    head = _small_head(settings=SegmentSettings(context_windows=3))
    d = json.loads(head.to_json())
    assert EncoderHead.from_json(head.to_json()).settings.context_windows == 3
    # a format 3 file has no context_windows: its windows were scored alone
    v3 = d | {"format_version": 3, "settings": {k: v for k, v in d["settings"].items() if k != "context_windows"}}
    assert EncoderHead.from_json(json.dumps(v3)).settings.context_windows == 1


def _short_head(d: int = 4, seed: int = 5, k: float = 10.0) -> ShortChannelHead:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, 2)))[0].T                      # 2 orthonormal rows
    return ShortChannelHead(basis, rng.normal(size=d), rng.uniform(0.5, 2, d), rng.normal(size=(7, d)),
                            rng.normal(size=7), k)


def test_short_channel_head_mixes_by_the_channels_number_of_windows():
    head = _small_head(short=_short_head())
    rng = np.random.default_rng(3)
    sh = head.short
    # the projection removes the basis directions and keeps what is orthogonal to them
    x = rng.normal(size=(6, 4))
    np.testing.assert_allclose(sh.project(x) @ sh.basis.T, 0, atol=1e-12)
    np.testing.assert_allclose(sh.project(sh.project(x)), sh.project(x), atol=1e-12)
    # one window: the short head alone (a channel's own statistics mean nothing over one row)
    np.testing.assert_allclose(head.predict_channel(x[:1]), sh.predict(x[:1]), atol=1e-6)
    # n windows: log-space mix with weight n / (n + k) on the speaker-standardised head
    for n in (2, 6):
        w = n / (n + sh.prior_windows)
        z = (w * np.log(head.predict_speaker(x[:n]).astype(np.float64))
             + (1 - w) * np.log(sh.predict(x[:n]).astype(np.float64)))
        want = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        np.testing.assert_allclose(head.predict_channel(x[:n]), want, atol=1e-5)
    # a long channel is all but the speaker-standardised head; a short one is not
    long = rng.normal(size=(4000, 4))
    np.testing.assert_allclose(head.predict_channel(long), head.predict_speaker(long), atol=0.02)
    assert np.abs(head.predict_channel(x[:2]) - head.predict_speaker(x[:2])).max() > 0.05
    # without a short head: the speaker-standardised head alone
    np.testing.assert_array_equal(_small_head().predict_channel(x), _small_head().predict_speaker(x))
    with pytest.raises(ValueError):
        head.predict_channel(np.zeros((0, 4)))
    # it survives JSON; a version 2 file has none; bad shapes are refused
    again = EncoderHead.from_json(head.to_json())
    np.testing.assert_allclose(again.predict_channel(x), head.predict_channel(x), atol=1e-7)
    d = json.loads(head.to_json())
    v2 = {k: v for k, v in d.items() if k != "short"} | {"format_version": 2}
    assert EncoderHead.from_json(json.dumps(v2)).short is None
    for key, bad in (("coef", [[0.0] * 3] * 7), ("basis", [[0.0] * 5]), ("prior_windows", 0.0)):
        with pytest.raises(ArtifactError, match="short"):
            EncoderHead.from_json(json.dumps(d | {"short": d["short"] | {key: bad}}))


def test_the_short_head_scores_an_unheard_speakers_single_window():
    pytest.importorskip("sklearn")
    from training.encoder_head import fit_heads, speaker_basis

    # rows = the speaker's offset (large, along 12 directions) + the emotion's pattern + noise;
    # a new speaker's offset lies in the training speakers' span but is none of theirs
    rng = np.random.default_rng(0)
    d, n_spk, per = 40, 13, 60
    offsets = rng.normal(scale=4.0, size=(n_spk, d))
    pattern = rng.normal(size=(4, d))
    labels = [EMOTIONS.index(e) for e in ("angry", "happy", "neutral", "sad")]

    def rows(offset, n):
        k = rng.integers(0, 4, n)
        return offset + pattern[k] + rng.normal(scale=0.8, size=(n, d)), np.array(labels)[k]

    data = [rows(o, per) for o in offsets]
    raw, y = np.vstack([r for r, _ in data]), np.concatenate([t for _, t in data])
    speakers = np.repeat([f"c:{i}" for i in range(n_spk)], per)
    basis = speaker_basis(raw, speakers)
    assert basis.shape == (n_spk - 1, d)
    np.testing.assert_allclose(basis @ basis.T, np.eye(n_spk - 1), atol=1e-9)
    with pytest.raises(ValueError):
        speaker_basis(raw[:per], speakers[:per])
    head = fit_heads(raw, y, ["c"] * len(y), speakers)
    # the projected speaker means coincide: no speaker left to read
    proj = head.short.project(np.stack([raw[speakers == s].mean(0) for s in np.unique(speakers)]))
    assert np.abs(proj - proj.mean(0)).max() < 1e-6 * np.abs(raw).max()
    new_offset = rng.dirichlet(np.ones(n_spk)) @ offsets + 3.0 * (offsets[0] - offsets[1])
    x, t = rows(new_offset, 200)
    # one window at a time: the short head reads the emotion; the speaker-standardised head,
    # with no channel statistics, reads mostly the speaker
    single = np.concatenate([head.predict_channel(x[i:i + 1]) for i in range(len(x))])
    assert (single.argmax(1) == t).mean() > 0.9
    assert (head.predict(x).argmax(1) == t).mean() < 0.7
    with pytest.raises(ValueError, match="conditions"):
        fit_heads(raw[:-1], y[:-1], ["c"] * (len(y) - 1), speakers)


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


def test_serving_runs_the_int8_encoder_only_where_it_agrees_with_the_float_one(tmp_path, caplog):
    """The shipped artifact's int8 encoder serves when asked and when it follows the float one
    on this CPU; an int8 file that does not (a plain dynamic quantisation, which saturates on the
    mel power input) falls back to float with a warning; without the file, or int8=False (training), the float encoder runs."""
    import shutil

    pytest.importorskip("onnxruntime")
    from ser_lib.encoder import ENCODER_INT8_FILE
    from ser_lib.models import DEFAULT_ENCODER

    art = tmp_path / "art"
    shutil.copytree(DEFAULT_ENCODER, art)
    assert (art / ENCODER_INT8_FILE).is_file(), "the shipped accurate model carries its int8 encoder"
    wav = speech_like(6.0, 8000, np.random.default_rng(4), level_db=-24)
    windows = [wav[i:i + 16000] for i in range(0, len(wav) - 16000 + 1, 8000)]
    served, trained = EncoderModel(art, int8=True), EncoderModel(art)
    assert (served.precision, trained.precision) == ("int8", "float32") and served.int8_cosine >= 0.98
    a, b = served.predict_channel(windows, 8000), trained.predict_channel(windows, 8000)
    assert a.shape == b.shape and np.abs(a - b).max() < 0.1
    assert not np.array_equal(served.features(windows, 8000), trained.features(windows, 8000))

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(art / "encoder.onnx"), str(art / ENCODER_INT8_FILE), weight_type=QuantType.QInt8)
    with caplog.at_level("WARNING"):
        bad = EncoderModel(art, int8=True)
    assert bad.precision == "float32" and bad.int8_cosine < 0.98 and "float encoder" in caplog.text
    np.testing.assert_array_equal(bad.features(windows, 8000), trained.features(windows, 8000))
    (art / ENCODER_INT8_FILE).unlink()
    assert EncoderModel(art, int8=True).precision == "float32"


def _tiny_corpus(root: Path) -> None:
    """RAVDESS-named clips of three actors and EMOVO-named clips of two (a corpus the shipped
    CNN never trained on), four emotions, speech-like audio whose pitch and level follow the
    emotion (so the head has something to learn)."""
    rng = np.random.default_rng(3)
    codes = {"01": -30, "03": -18, "04": -34, "05": -12}     # neutral, happy, sad, angry: level in dBFS
    for actor in (1, 2, 5):                                    # 01, 02: CV fold 0; 05: fold 1
        for code, level in codes.items():
            for rep in ("01", "02"):
                for statement in ("01", "02"):
                    p = root / "ravdess" / f"Actor_{actor:02d}" / f"03-01-{code}-01-{statement}-{rep}-{actor:02d}.wav"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(p, speech_like(1.8, 16000, rng, level_db=level), 16000, subtype="PCM_16")
    for speaker in ("f1", "m1"):
        for code, level in {"neu": -30, "gio": -18, "tri": -34, "rab": -12}.items():
            for sentence in ("b1", "n2"):
                p = root / "emovo" / speaker / f"{code}-{speaker}-{sentence}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                sf.write(p, speech_like(2.6, 16000, rng, level_db=level), 16000, subtype="PCM_16")


def test_artifact_serves_what_training_fitted(tmp_path):
    pytest.importorskip("torch", reason="needs the [train] install (torch) to export the encoder")
    pytest.importorskip("resemblyzer", reason="needs the [train] install (resemblyzer)")
    from training.corpora import discover
    from training.dataset import clip_samples
    from training.encoder_head import CONTEXT_WINDOWS, DEFAULT_CNN, clip_features

    from click.testing import CliRunner

    from jobs.cli import cli

    _tiny_corpus(tmp_path / "corpora")
    # the documented build command: ser train --variant accurate (training.encoder_head.build)
    res = CliRunner().invoke(cli, ["train", "--variant", "accurate", str(tmp_path / "corpora"),
                                   "--out", str(tmp_path / "artifact")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "artifact"
    assert str(out) in res.output
    assert "Apache License" in (out / ENCODER_LICENSE_FILE).read_text()
    model = EncoderModel(out)
    assert model.head.training["conditions"] == ["8k", "telephone"]
    assert model.head.training["n_clips"] * 2 == model.head.training["n_train"]
    assert model.labels == list(EMOTIONS)
    clips = discover(tmp_path / "corpora").clips
    # training's features (clip_features; per-speaker standardisation for the speaker head,
    # the speaker subspace projected out for the short-channel head) through both heads ...
    raw = clip_features(clips, model.encoder, model.head.settings)
    spk = np.array([c.speaker for c in clips])
    assert model.head.short is not None and model.head.short.prior_windows == 10.0
    want = np.zeros((len(clips), len(EMOTIONS)))
    for s in np.unique(spk):
        m = spk == s
        w = m.sum() / (m.sum() + model.head.short.prior_windows)
        z = (w * np.log(np.maximum(model.head.predict(speaker_standardize(raw[m])), 1e-12))
             + (1 - w) * np.log(np.maximum(model.head.short.predict(raw[m]), 1e-12)))
        want[m] = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    # ... equal serving's: one channel = one speaker's clips, given as samples at the job's 8 kHz,
    # each its own run of speech (starts 10 s apart at a 1 s hop: no pooling across them)
    assert model.head.settings.context_windows == CONTEXT_WINDOWS == 3
    for actor in ("ravdess:01", "ravdess:02"):
        idx = [i for i, c in enumerate(clips) if c.speaker == actor]
        segs = [clip_samples(clips[i].path, 8000) for i in idx]
        got = model.predict_channel(segs, 8000, start_s=np.arange(len(idx)) * 10.0, hop_s=1.0)
        np.testing.assert_allclose(got, want[idx], atol=1e-5)
        # as consecutive windows of one run (the default without starts), each row is pooled
        # with its neighbours' before the heads
        pooled = model.predict_channel(segs, 8000)
        np.testing.assert_allclose(pooled, model.head.predict_channel(
            pool_context(raw[idx], np.arange(len(idx)), 1.0, 3)), atol=1e-5)
        assert not np.allclose(pooled, got, atol=1e-3)
        assert got.shape == (len(idx), len(EMOTIONS)) and np.allclose(got.sum(1), 1, atol=1e-5)
    # a channel of one clip: the short-channel head alone
    one = model.predict_channel([clip_samples(clips[0].path, 8000)], 8000)
    np.testing.assert_allclose(one, model.head.short.predict(raw[:1]), atol=1e-5)
    # emotions the corpus lacks are never predicted
    assert np.all(want[:, [EMOTIONS.index(e) for e in ("disgust", "fear", "surprise")]] < 1e-6)
    # the fusion temperature was fitted on window predictions on the corpus no model heard:
    # EMOVO, with the shipped CNN (RAVDESS has no CNN that never trained on it)
    head = model.head
    from training.encoder_head import (CALL_ORDER_SEED, fit_fusion_temperature, fusion_weight, held_out_predictions,
                                       speaker_call_windows)
    cnn_t = json.loads((Path(DEFAULT_CNN) / "artifact.json").read_text())["calibration"]["temperature"]
    assert head.fusion == "log" and head.cnn_weight == pytest.approx(fusion_weight(cnn_t)) and head.temperature != 1.0
    raw_all = np.vstack([clip_features(clips, model.encoder, head.settings, condition=c) for c in ("8k", "telephone")])
    cnn_ho, head_ho, y_ho, used = held_out_predictions(clips, raw_all, DEFAULT_CNN, model.encoder, head.settings)
    assert list(used) == ["emovo"] and Path(used["emovo"][0]) == Path(DEFAULT_CNN)
    assert head.training["calibration"]["corpora"] == {"emovo": {"cnn": ".", "n_windows": len(y_ho)}}
    # the 2 speakers' calls (in two clip orders) and each of their 16 clips alone, each window labelled with
    # its clip's emotion
    n_emovo = sum(c.corpus == "emovo" for c in clips)
    assert head.training["calibration"]["n_windows"] == len(y_ho) >= 2 * n_emovo
    assert set(y_ho.tolist()) == {EMOTIONS.index(e) for e in ("neutral", "happy", "sad", "angry")}
    assert head.temperature == pytest.approx(fit_fusion_temperature(cnn_ho, head_ho, y_ho, head.cnn_weight), rel=1e-4)
    # ... and those heads never saw EMOVO: scoring the EMOVO clips with a head refitted without
    # them gives the same head probabilities
    from training.encoder_head import fit_heads
    corpus = np.array([c.corpus for c in clips])
    y = np.array([EMOTIONS.index(c.emotion) for c in clips])
    keep = np.tile(corpus != "emovo", 2)
    h2 = fit_heads(raw_all[keep], np.tile(y, 2)[keep], np.tile(corpus, 2)[keep],
                   [c.speaker for c in clips if c.corpus != "emovo"], 2)
    first = [c for c in clips if c.speaker == "emovo:f1"]
    _, rows, _ = speaker_call_windows(first, model.encoder, head.settings)
    np.testing.assert_allclose(head_ho[:len(rows)], h2.predict_channel(rows), atol=1e-5)
    # ... then the same speaker's clips again as a call in a seeded random order (the corpora
    # list them emotion by emotion, the easy order for pooled windows)
    order = np.random.default_rng(CALL_ORDER_SEED).permutation(len(first))
    assert not np.array_equal(order, np.arange(len(first)))
    _, rows2, lab2 = speaker_call_windows([first[k] for k in order], model.encoder, head.settings)
    np.testing.assert_allclose(head_ho[len(rows):len(rows) + len(rows2)], h2.predict_channel(rows2), atol=1e-5)
    np.testing.assert_array_equal(y_ho[len(rows):len(rows) + len(rows2)], lab2)
    # a call's windows are encoded as serving encodes them
    own = [c for c in clips if c.speaker == "ravdess:05"]
    feats, rows, lab = speaker_call_windows(own, model.encoder, head.settings)
    assert len(feats) == len(rows) == len(lab) and rows.shape[1] == 512
    # ... pooled over the head's context windows, as serving pools them
    import dataclasses
    _, alone, _ = speaker_call_windows(own, model.encoder, dataclasses.replace(head.settings, context_windows=1))
    assert head.settings.context_windows == 3 and alone.shape == rows.shape and not np.allclose(alone, rows)
    # late fusion with the CNN's probabilities of the same windows: the renormalised geometric
    # mean, tempered by the head's temperature
    idx = [i for i, c in enumerate(clips) if c.speaker == "ravdess:01"]
    cnn = np.random.default_rng(0).dirichlet(np.ones(len(EMOTIONS)), size=len(idx)).astype(np.float32)
    fused = model.predict_channel([clip_samples(clips[i].path, 8000) for i in idx], 8000, cnn_probs=cnn,
                                  start_s=np.arange(len(idx)) * 10.0)  # separate utterances: no pooling
    w = head.cnn_weight
    z = (w * np.log(cnn.astype(np.float64)) + (1 - w) * np.log(np.maximum(want[idx].astype(np.float64), 1e-12)))
    z = z / head.temperature
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(fused, e / e.sum(1, keepdims=True), atol=1e-5)
    with pytest.raises(ValueError):
        model.predict_channel([], 16000)


def test_a_held_out_cnn_scores_at_the_served_cnns_temperature():
    """The leave-one-corpus-out model that calibrates the fusion on TurEV-DB keeps its own
    (validation) temperature in its artifact, but scores at the served CNN's, the one the
    fusion weight is computed from."""
    from ser_lib.artifact import load_meta
    from training.encoder_head import DEFAULT_CNN, unheard_cnn, unheard_predictor

    loco = unheard_cnn(DEFAULT_CNN, "turev")
    assert loco == Path(DEFAULT_CNN) / "cv" / "loco"
    served = load_meta(DEFAULT_CNN).temperature
    assert unheard_predictor(DEFAULT_CNN, loco).meta.temperature == pytest.approx(served)
    assert load_meta(loco).temperature != pytest.approx(served)   # the shipped rule tempers them apart
    assert unheard_predictor(DEFAULT_CNN, DEFAULT_CNN).meta.temperature == pytest.approx(served)


def test_fuse_is_the_weighted_mean_and_checks_its_inputs():
    a, b = np.eye(3, dtype=np.float32), np.full((3, 3), 1 / 3, np.float32)
    np.testing.assert_allclose(fuse(a, b, 0.25), 0.25 * a + 0.75 * b)
    np.testing.assert_allclose(fuse(a, b, 1.0), a)
    with pytest.raises(ValueError, match="shapes"):
        fuse(a, b[:2], 0.5)
    with pytest.raises(ValueError, match="cnn_weight"):
        fuse(a, b, 1.5)
    with pytest.raises(ValueError, match="fusion"):
        fuse(a, b, 0.5, "max")
    with pytest.raises(ValueError, match="temperature"):
        fuse(a, b, 0.5, "log", 0.0)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.maximum(p, 1e-12))).sum(1)


def test_log_fusion_and_temperature_on_constructed_probabilities():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(7) * 0.5, size=50).astype(np.float32)
    b = rng.dirichlet(np.ones(7) * 0.5, size=50).astype(np.float32)
    # log fusion at T = 1: the weighted geometric mean, renormalised
    geo = a.astype(np.float64) ** 0.3 * b.astype(np.float64) ** 0.7
    np.testing.assert_allclose(fuse(a, b, 0.3, "log"), geo / geo.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fuse(a, b, 1.0, "log"), a, rtol=1e-4, atol=1e-6)
    # equal inputs: both rules give the input back
    np.testing.assert_allclose(fuse(a, a, 0.5, "log"), a, rtol=1e-4, atol=1e-6)
    for rule in ("linear", "log"):
        p1 = fuse(a, b, 0.5, rule)
        np.testing.assert_allclose(fuse(a, b, 0.5, rule, 1.0), p1)          # T = 1: identity
        lin = 0.5 * a + 0.5 * b
        if rule == "linear":
            np.testing.assert_allclose(p1, lin, atol=1e-6)
        # T applies softmax(log p / T)
        t2 = np.exp(np.log(p1.astype(np.float64)) / 2)
        np.testing.assert_allclose(fuse(a, b, 0.5, rule, 2.0), t2 / t2.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
        prev = p1
        for t in (1.5, 3.0, 10.0):                                         # higher T: flatter
            pt = fuse(a, b, 0.5, rule, t)
            assert pt.dtype == np.float32 and np.allclose(pt.sum(1), 1, atol=1e-5)
            assert np.all(_entropy(pt) >= _entropy(prev) - 1e-6) and np.all(pt.max(1) <= prev.max(1) + 1e-6)
            np.testing.assert_array_equal(pt.argmax(1), p1.argmax(1))    # the decision never changes
            prev = pt
        assert np.all(fuse(a, b, 0.5, rule, 0.5).max(1) >= p1.max(1) - 1e-6)  # lower T: sharper
    assert fuse(a[:0], b[:0], 0.5, "log", 2.0).shape == (0, 7)


@pytest.mark.parametrize("power,above_one", [(3.0, True), (0.4, False)])
def test_fitted_fusion_temperature_undoes_over_and_under_confidence(power, above_one):
    pytest.importorskip("scipy")
    from training.encoder_head import fit_fusion_temperature

    rng = np.random.default_rng(4)
    true = rng.dirichlet(np.ones(7) * 0.7, size=4000)
    y = np.array([rng.choice(7, p=p) for p in true])
    # both models report the true probabilities raised to ``power`` (over-confident for
    # power > 1, under-confident below): the fused log-space output is the same, and
    # T = power undoes it
    sharp = true ** power
    sharp /= sharp.sum(1, keepdims=True)
    t = fit_fusion_temperature(sharp, sharp, y, 0.5, "log")
    assert (t > 1.0) == above_one
    assert abs(np.log(t) - np.log(power)) < 0.2
    # calibrated inputs: T near 1
    assert abs(fit_fusion_temperature(true, true, y, 0.5, "log") - 1.0) < 0.1


def test_serving_applies_the_heads_fusion_and_temperature():
    from ser_lib.models import DEFAULT_ENCODER

    if not (Path(DEFAULT_ENCODER) / HEAD_FILE).is_file():
        pytest.skip("no shipped encoder-head artifact in this checkout")
    model = EncoderModel(DEFAULT_ENCODER)
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(6, 512)).astype(np.float32)
    cnn = rng.dirichlet(np.ones(7), size=6).astype(np.float32)
    # the rows of 6 consecutive speech windows, pooled over the head's context windows first
    head_p = model.head.predict_channel(pool_context(feats, np.arange(6.0), 1.0, model.head.settings.context_windows))
    for rule, t in (("linear", 1.0), ("log", 1.0), ("log", 2.5), ("linear", 0.6)):
        model.head.fusion, model.head.temperature = rule, t
        got = model.predict_features(feats, cnn)
        np.testing.assert_allclose(got, fuse(cnn, head_p, model.head.cnn_weight, rule, t), atol=1e-6)
        if rule == "log" and t == 2.5:
            assert not np.allclose(got, fuse(cnn, head_p, 0.5, "log", 1.0), atol=1e-3)
    # one window: fused with the short-channel head; a head without one (format 1 and 2
    # files) keeps the CNN's probabilities as they are
    assert model.head.short is not None
    np.testing.assert_allclose(model.predict_features(feats[:1], cnn[:1]),
                               fuse(cnn[:1], model.head.short.predict(feats[:1]), model.head.cnn_weight,
                                    model.head.fusion, model.head.temperature), atol=1e-6)
    model.head.short = None
    np.testing.assert_array_equal(model.predict_features(feats[:1], cnn[:1]), cnn[:1])


@pytest.mark.parametrize("t", [0.5, 0.658, 1.0, 1.7])
def test_fusion_weight_keeps_the_cnns_unscaled_log_probabilities_at_their_weight(t):
    """Fusing the CNN's temperature-scaled output with fusion_weight(T) is, up to the fusion's own
    temperature, fusing its unscaled output with CNN_WEIGHT: the CNN's calibration does not move the balance."""
    from ser_lib.encoder_head import fuse
    from training.encoder_head import CNN_WEIGHT, fusion_weight

    rng = np.random.default_rng(3)
    z, head = rng.normal(size=(50, 7)) * 3, rng.dirichlet(np.ones(7), size=50)
    raw = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    scaled = np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)
    w = fusion_weight(t)
    # log fuse(scaled, w) = (w / t) z + (1 - w) log head + c = s * (CNN_WEIGHT z + (1 - CNN_WEIGHT) log head) + c
    s = (1 - w) / (1 - CNN_WEIGHT)
    np.testing.assert_allclose(fuse(scaled, head, w, "log", 1.0), fuse(raw, head, CNN_WEIGHT, "log", 1.0 / s),
                               rtol=1e-4, atol=1e-6)
    assert fusion_weight(1.0) == CNN_WEIGHT and 0.0 <= w <= 1.0
    with pytest.raises(ValueError):
        fusion_weight(0.0)
