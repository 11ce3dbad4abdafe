"""Fast tests of the training code (generated audio; no corpora needed)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser_lib.features import FeatureConfig, window_features
from ser_lib.labels import EMOTIONS
from ser_lib.speech import SpeechConfig, is_speech
from training.augment import (
    AugmentConfig,
    a_law_compress,
    a_law_expand,
    augment,
    clip_seed,
    companding,
    telephone,
)
from training.corpora import Clip, default_corpora_root
from training.dataset import build_windows, class_weights, clip_samples, norm_stats, speech_windows
from training.dataset import WindowSet
from training.evaluate import (
    bootstrap_ua_interval,
    clip_probabilities,
    clip_speakers,
    scores,
    speaker_scores,
)

SR = 16000
ALL_ON = AugmentConfig(p_noise=1, p_stretch=1, p_pitch=1, p_shift=1, p_telephone=1)


def _voice(seconds: float, f0: float, seed: int = 0, sr: int = SR, level: float = 0.3) -> np.ndarray:
    """Speech-like sound (:func:`ser_lib.synth.speech_like`: harmonics, moving formants,
    syllable envelope) peak-normalised to ``level``; ``f0`` and ``seed`` pick the draw."""
    from ser_lib.synth import speech_like

    y = speech_like(seconds, sr, np.random.default_rng([seed, int(f0 * 10)]))
    return (level * y / np.max(np.abs(y))).astype(np.float32)


# --------------------------------------------------------------------------- augmentation

def test_augment_keeps_length_dtype_and_is_seeded():
    y = _voice(1.7, 180.0)
    a = augment(y, SR, ALL_ON, seed=11)
    assert a.shape == y.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, augment(y, SR, ALL_ON, seed=11))
    assert not np.array_equal(a, augment(y, SR, ALL_ON, seed=12))
    assert not np.array_equal(a, y)
    # default probabilities, short input, 8 kHz
    b = augment(y[:3000], 8000, AugmentConfig(), seed=3)
    assert b.shape == (3000,) and np.isfinite(b).all()


def test_augment_does_not_disturb_global_random_state():
    state = np.random.get_state()
    augment(_voice(0.5, 200.0), SR, ALL_ON, seed=5)
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_telephone_is_band_limited_8k_and_deterministic():
    noise = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    out = telephone(noise, SR, np.random.default_rng(clip_seed("clip-a", 7)))
    assert out.dtype == np.float32 and out.shape == (2 * 8000,)
    again = telephone(noise, SR, np.random.default_rng(clip_seed("clip-a", 7)))
    assert np.array_equal(out, again)
    spec = np.abs(np.fft.rfft(out[2000:] * np.hanning(len(out) - 2000))) ** 2
    freqs = np.fft.rfftfreq(len(out) - 2000, 1 / 8000)
    low = spec[(freqs > 20) & (freqs < 250)].mean()
    band = spec[(freqs > 500) & (freqs < 3000)].mean()
    assert low < band / 100  # > 20 dB down below the 300 Hz band edge
    assert freqs.max() <= 4000  # 8 kHz output: nothing above Nyquist exists


def test_companding_laws():
    x = np.linspace(-1, 1, 2001)
    # A-law: continuous compress/expand are inverses; G.711 breakpoint at |x| = 1/A
    assert np.allclose(a_law_expand(a_law_compress(x)), x, atol=1e-12)
    assert np.isclose(a_law_compress(np.array([1 / 87.6]))[0], 1 / (1 + np.log(87.6)))
    for law in ("mu", "a"):
        y = companding(0.5 * np.sin(np.linspace(0, 60, 4000)), law)
        assert y.dtype == np.float32
        assert len(np.unique(y)) <= 256  # 8-bit codes
        err = y - 0.5 * np.sin(np.linspace(0, 60, 4000))
        assert np.sqrt(np.mean(err ** 2)) < 0.01  # ~35-38 dB SQNR of 8-bit companding
    with pytest.raises(ValueError):
        companding(x, "g722")


# --------------------------------------------------------------------------- dataset

def _write_clips(tmp: Path, n_per_class: int, corpus: str = "ravdess") -> list[Clip]:
    clips = []
    for ci, emo in enumerate(EMOTIONS):
        for k in range(n_per_class):
            path = tmp / f"{corpus}_{emo}_{k}.wav"
            dur = 1.2 + 0.8 * ((k + ci) % 3)  # shorter and longer than a 2 s window
            y = _voice(dur, 110.0 + 35.0 * ci + 7 * k, seed=100 * ci + k, level=0.05 + 0.07 * ci)
            sf.write(path, y, SR, subtype="PCM_16")
            clips.append(Clip(str(path), corpus, f"{corpus}:{k:02d}", emo, "01", emo))
    return clips


def test_variant_draws_do_not_depend_on_where_the_corpora_are_mounted(tmp_path):
    from training.dataset import variant_samples

    y = _voice(1.5, 180.0)
    paths = []
    for root in ("a", "b/deeper"):
        folder = tmp_path / root / "Actor_03"
        folder.mkdir(parents=True)
        sf.write(folder / "03-01-05-01-01-01-03.wav", y, SR, subtype="PCM_16")
        paths.append(str(folder / "03-01-05-01-01-01-03.wav"))
    paths.append(str(tmp_path / "b" / ".." / "a" / "Actor_03" / "03-01-05-01-01-01-03.wav"))  # another spelling
    for variant, aug in (("telephone", None), ("aug0", ALL_ON)):
        out = [variant_samples(p, 8000, variant, aug, seed=11) for p in paths]
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2]), variant
        assert not np.array_equal(out[0], variant_samples(paths[0], 8000, variant, aug, seed=12)), variant


def test_dataset_windows_equal_window_features(tmp_path):
    clips = _write_clips(tmp_path, 1)[:3]
    fc, sc = FeatureConfig(), SpeechConfig()
    ws = build_windows(clips, fc, sc, 0.5, cache_dir=tmp_path / "cache", processes=1, progress=False)
    for i, c in enumerate(clips):
        y = clip_samples(c.path, fc.sample_rate)
        feats, starts = window_features(y, fc, 0.5)
        mask = is_speech(feats, sc)
        assert mask.any()
        got = ws.x[ws.clip == i]
        assert np.array_equal(got, feats[mask])  # bit-identical to the serving path
        assert np.array_equal(ws.start[ws.clip == i], starts[mask])
        assert (ws.y[ws.clip == i] == EMOTIONS.index(c.emotion)).all()
    # the cache returns the same arrays
    again = build_windows(clips, fc, sc, 0.5, cache_dir=tmp_path / "cache", processes=1, progress=False)
    assert np.array_equal(again.x, ws.x) and np.array_equal(again.clip_id, ws.clip_id)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_all_silent_clip_keeps_loudest_window():
    fc = FeatureConfig()
    y = np.zeros(3 * fc.sample_rate, dtype=np.float32)
    y[2 * fc.sample_rate:] = 1e-4 * np.sin(np.arange(fc.sample_rate))  # far below -45 dBFS
    x, starts, n_total, fallback = speech_windows(y, fc, SpeechConfig(), 0.5)
    assert fallback and len(x) == 1 and n_total > 1
    assert starts[0] == window_features(y, fc, 0.5)[1][-1]  # the quiet tone is in the last window


def test_class_weights_and_norm_stats():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == 0.0
    x = np.random.default_rng(0).normal(3, 2, (50, 10, 4)).astype(np.float32)
    m, s = norm_stats(x, chunk=7)
    assert np.allclose(m, x.reshape(-1, 4).mean(0), atol=1e-4)
    assert np.allclose(s, x.reshape(-1, 4).std(0), atol=1e-4)


# --------------------------------------------------------------------------- metrics

def test_scores_match_sklearn_hand_example():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 4])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2, 4, 4])
    s = scores(y_true, y_pred)
    # per-class recall: 0: 2/4, 1: 1/2, 2: 2/3, 4: 1/1 -> UA = (0.5 + 0.5 + 0.6667 + 1) / 4
    assert s["ua"] == pytest.approx((0.5 + 0.5 + 2 / 3 + 1) / 4)
    assert s["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["wa"] == pytest.approx(0.6) == accuracy_score(y_true, y_pred)
    assert s["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert s["recall"][3] is None and s["confusion"][0] == [2, 1, 1, 0, 0, 0, 0]


def test_clip_level_averages_window_probabilities():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    cp = clip_probabilities(probs, np.array([0, 0, 0, 1]), 2)
    assert np.allclose(cp[0], [1.4 / 3, 1.6 / 3]) and np.allclose(cp[1], [0.6, 0.4])


def test_bootstrap_ua_interval_brackets_the_point_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 7, 300))  # ~60 % right
    ua = balanced_accuracy_score(y, pred)
    lo, hi = bootstrap_ua_interval(y, pred, seed=1)
    assert lo < ua < hi and 0.05 < hi - lo < 0.25
    assert (lo, hi) == bootstrap_ua_interval(y, pred, seed=1)  # seeded
    lo_s, hi_s = bootstrap_ua_interval(y[:60], pred[:60], seed=1)
    assert hi_s - lo_s > hi - lo  # fewer clips, wider interval
    assert bootstrap_ua_interval(y, y) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ua_interval(y[:0], pred[:0])
    with pytest.raises(ValueError):
        bootstrap_ua_interval(y, pred, level=1.0)


def test_speaker_scores_split_clips_by_speaker():
    # 6 clips of one window each: speaker A all right, speaker B one of three right.
    labels = np.array([0, 1, 2, 0, 1, 2])
    guess = np.array([0, 1, 2, 0, 0, 0])
    probs = np.eye(7, dtype=np.float32)[guess]
    ws = WindowSet(x=np.zeros((6, 1, 1), np.float32), y=labels, clip=np.arange(6), start=np.zeros(6, np.int64),
                   clip_id=np.array([f"/c/{i}.flac" + ("#telephone" if i == 5 else "") for i in range(6)]),
                   clip_label=labels, clip_corpus=np.array(["ravdess"] * 6), clip_fallback=np.zeros(6, bool),
                   clip_windows=np.ones(6, np.int64))
    spk = clip_speakers(ws, {f"/c/{i}.flac": "ravdess:A" if i < 3 else "ravdess:B" for i in range(6)})
    assert spk.tolist() == ["ravdess:A"] * 3 + ["ravdess:B"] * 3
    d = speaker_scores(ws, probs, spk, n_boot=200)
    per = d["ravdess"]["per_speaker"]
    assert per["ravdess:A"] == {"ua": 1.0, "wa": 1.0, "n": 3}
    assert per["ravdess:B"]["ua"] == pytest.approx(round(1 / 3, 4)) and per["ravdess:B"]["n"] == 3
    lo, hi = d["pooled"]["clip_ua_ci95"]
    assert lo <= scores(labels, guess)["ua"] <= hi and "per_speaker" not in d["pooled"]
    with pytest.raises(KeyError):
        clip_speakers(ws, {})


# --------------------------------------------------------------------------- end to end

def test_tiny_end_to_end_train_writes_loadable_artifact(tmp_path, monkeypatch):
    from ser_lib.runtime import Predictor
    import training.dataset as dataset
    import training.prepare as prepare
    import training.train as train
    from training.config import load_conf

    for module in (dataset, prepare, train):
        monkeypatch.setattr(module, "CACHE_DIR", tmp_path / "cache" / "windows")
    audio = tmp_path / "audio"
    audio.mkdir()
    clips = _write_clips(audio, 3)  # 21 clips, 3 per emotion
    by_k = {0: "train", 1: "val", 2: "test"}
    parts = {p: [c for c in clips if by_k[int(c.speaker[-2:])] == p] for p in ("train", "val", "test")}

    class Found:
        clips = list(parts["train"] + parts["val"] + parts["test"])
        skipped = {}

    split_file = tmp_path / "split.json"
    split_file.write_text("{}")
    monkeypatch.setattr(prepare, "discover", lambda roots: Found)
    monkeypatch.setattr(prepare, "load_split", lambda path: {})
    monkeypatch.setattr(prepare, "partition", lambda clips, split: parts)
    monkeypatch.setattr(prepare, "check_disjoint", lambda *a, **k: None)

    conf = load_conf(None)
    conf["split"] = str(split_file)
    conf["augment"]["copies"] = 1
    conf["train"].update(batch_size=16, warmup_epochs=0)
    out = tmp_path / "artifact"
    report = train.run([audio], conf, out, families=["cnn1d"], epochs=1, processes=1, progress=False,
                       bench=False, echo=lambda *a: None)

    for name in ("artifact.json", "model.keras", "report.json", "confusion.png", "curves.png"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "artifact.json").read_text())
    assert meta["version"].startswith("cnn1d-")
    assert meta["training"]["split_sha256"] == hashlib.sha256(split_file.read_bytes()).hexdigest()
    assert meta["training"]["seed"] == conf["seed"]
    # the shipped distill_teacher: auto is a recipe setting: the single split trained on the labels and says so
    assert conf["train"]["distill_teacher"] == "auto" and meta["training"]["conf"]["train"]["distill_teacher"] is None
    assert set(meta["metrics"]) >= {"test", "test_telephone", "val", "selection"}
    assert report["family"] == "cnn1d"
    pred = Predictor.from_path(out, expected=FeatureConfig())
    feats, _ = window_features(clip_samples(clips[0].path, 8000), FeatureConfig(), 1.0)
    p = pred.predict(feats)
    assert p.shape == (len(feats), len(EMOTIONS)) and np.allclose(p.sum(1), 1, atol=1e-5)
    # The saved model's clip-level test results, recomputed here without training.evaluate: mean
    # window probability per clip, argmax; UA = mean recall over the classes present.
    ws, probs = _ws_and_probs(pred, parts["test"], conf["hop_s"])
    clip_pred = np.array([probs[ws.clip == i].astype(np.float64).mean(0).argmax() for i in range(ws.n_clips)])
    ua = np.mean([np.mean(clip_pred[ws.clip_label == c] == c) for c in np.unique(ws.clip_label)])
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    np.add.at(confusion, (ws.clip_label, clip_pred), 1)
    assert meta["metrics"]["test"]["ravdess"]["clip"]["ua"] == pytest.approx(ua, abs=5e-5)
    assert meta["metrics"]["test"]["ravdess"]["clip"]["n"] == len(parts["test"])
    # Per-speaker detail is reported, and `ser evaluate` reproduces the stored test metrics.
    assert set(meta["metrics"]["test_speakers"]["test"]["ravdess"]["per_speaker"]) == {c.speaker for c in parts["test"]}
    again = train.evaluate_artifact(out, [audio], processes=1, progress=False, echo=lambda *a: None)
    for cond in ("test", "test_telephone"):
        for corpus, levels in meta["metrics"][cond].items():
            for level, s in levels.items():
                assert round(again[cond][corpus][level]["ua"], 4) == s["ua"], (cond, corpus, level)
    assert again["test_speakers"] == meta["metrics"]["test_speakers"]
    assert again["test"]["ravdess"]["clip"]["confusion"] == confusion.tolist()
    (out / "confusion.png").unlink()
    written = train.write_evaluation(out, again)
    assert all(p.is_file() for p in written) and (out / "confusion.png").is_file()
    meta2 = json.loads((out / "artifact.json").read_text())
    assert meta2["metrics"]["evaluated"]["by"] == "ser evaluate"
    assert meta2["metrics"]["test"] == meta["metrics"]["test"] and meta2["training"] == meta["training"]
    assert json.loads((out / "evaluation.json").read_text())["version"] == meta["version"]
    Predictor.from_path(out, expected=FeatureConfig())  # still a loadable artifact


def _ws_and_probs(pred, clips, hop_s):
    ws = build_windows(clips, FeatureConfig(), SpeechConfig(), hop_s, cache_dir=None, processes=1, progress=False)
    return ws, pred.predict(ws.x)


def test_model_families_build_and_count_flops():
    from training.models import build_model, count_flops

    fc = FeatureConfig()
    m1 = build_model("cnn1d", (fc.frames_per_window, fc.n_features), len(EMOTIONS))
    m2 = build_model("cnn2d", (fc.frames_per_window, fc.n_features), len(EMOTIONS))
    assert m1.output_shape == (None, 7) and m2.output_shape == (None, 7)
    assert m1.count_params() <= 300_000 and count_flops(m1) <= 10_000_000
    # first conv of cnn1d: 99 output frames x 48 channels x 5 taps x 74 features, 2 FLOPs per MAC
    assert count_flops(m1) > 2 * 99 * 48 * 5 * 74
    with pytest.raises(ValueError):
        build_model("rnn", (197, 74), 7)


def test_cnn2d_sees_only_the_log_mel_bands_of_the_pitch_layout():
    """With pitch=True three columns follow the mel bands; the 2-D CNN's image crops them off."""
    import keras

    from training.models import build_model

    fc = FeatureConfig(pitch=True)
    m = build_model("cnn2d", (fc.frames_per_window, fc.n_features), len(EMOTIONS))
    assert m.get_layer("mel").output.shape[1:] == (fc.frames_per_window, fc.n_mels, 1)
    x = np.random.default_rng(0).standard_normal((2, fc.frames_per_window, fc.n_features)).astype(np.float32)
    y = x.copy()
    y[:, :, -3:] += 5.0  # only the pitch columns differ
    probe = keras.Model(m.input, m.get_layer("mel").output)
    np.testing.assert_array_equal(np.asarray(probe(x)), np.asarray(probe(y)))
    with pytest.raises(ValueError, match="mel bands"):
        build_model("cnn2d", (fc.frames_per_window, 50), len(EMOTIONS))


def test_variance_pooling_is_the_variance_over_time_and_saves_without_custom_objects(tmp_path):
    import keras

    from training.models import build_model

    fc = FeatureConfig()
    m = build_model("cnn1d", (fc.frames_per_window, fc.n_features), len(EMOTIONS), var_pool=True)
    x = np.random.default_rng(0).standard_normal((3, fc.frames_per_window, fc.n_features)).astype(np.float32)
    probe = keras.Model(m.input, [m.get_layer("relu3").output, m.get_layer("var").output])
    act, var = (np.asarray(a) for a in probe(x))
    np.testing.assert_allclose(var, act.var(axis=1), rtol=1e-3, atol=1e-4)
    plain = build_model("cnn1d", (fc.frames_per_window, fc.n_features), len(EMOTIONS))
    assert m.get_layer("stats").output.shape[-1] == plain.get_layer("stats").output.shape[-1] + 128
    m.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")  # stock layers: no custom_objects needed
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(m(x)), rtol=1e-5, atol=1e-6)


def test_attentive_pooling_is_the_attention_weighted_mean_and_variance_and_saves_without_custom_objects(tmp_path):
    import keras

    from training.models import build_model

    fc = FeatureConfig()
    m = build_model("cnn1d", (fc.frames_per_window, fc.n_features), len(EMOTIONS), attn_pool=True, attn_units=8)
    x = np.random.default_rng(1).standard_normal((3, fc.frames_per_window, fc.n_features)).astype(np.float32)
    probe = keras.Model(m.input, [m.get_layer(n).output for n in ("relu3", "attn_w", "attn_mean", "attn_var")])
    act, w, mean, var = (np.asarray(a) for a in probe(x))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)                # softmax over time
    want = (w * act).sum(axis=1)
    np.testing.assert_allclose(mean, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, (w * (act - want[:, None]) ** 2).sum(axis=1), rtol=1e-3, atol=1e-4)
    plain = build_model("cnn1d", (fc.frames_per_window, fc.n_features), len(EMOTIONS))
    assert m.get_layer("stats").output.shape[-1] == plain.get_layer("stats").output.shape[-1] + 2 * 128
    m.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")  # stock layers: no custom_objects needed
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(m(x)), rtol=1e-5, atol=1e-6)


CORPORA = default_corpora_root()


@pytest.mark.skipif(not (CORPORA / "ravdess").is_dir(),
                    reason=f"needs the RAVDESS corpus at {CORPORA} (set SER_CORPORA); not shipped with the repo")
def test_shipped_artifact_scores_a_real_clip():
    from ser_lib.artifact import DEFAULT_ARTIFACT
    from ser_lib.runtime import Predictor

    if not (DEFAULT_ARTIFACT / "artifact.json").is_file():
        pytest.skip(f"no trained artifact at {DEFAULT_ARTIFACT} yet")
    path = next((CORPORA / "ravdess").rglob("03-01-05-*.flac"))
    pred = Predictor.from_path(DEFAULT_ARTIFACT, expected=FeatureConfig())
    feats, _ = window_features(clip_samples(str(path), 8000), FeatureConfig(), 1.0)
    p = pred.predict(feats)
    assert p.shape[1] == len(EMOTIONS) and np.isfinite(p).all()
