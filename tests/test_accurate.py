"""The accurate model (ser_lib/models.py): the CNN fused with the speech-encoder head, per channel,
on generated calls; its window audio (ser_lib/stream.py ``keep_audio``); training features equal
serving features; selection in conf/job.yaml, ``ser predict --variant`` and the Spark job."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from ser_lib.config import JobConfig
from ser_lib.encoder_head import MIN_CHANNEL_WINDOWS, EncoderModel, fuse, pool_context
from ser_lib.errors import ArtifactError, ConfigError
from ser_lib.features import FeatureConfig
from ser_lib.labels import EMOTIONS
from ser_lib.models import DEFAULT_ENCODER, AccuratePredictor, load_scorer, read_bundle
from ser_lib.runtime import Predictor
from ser_lib.scoring import score_recording
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from tests.conftest import write_call

FC = FeatureConfig()
NAMES = JobConfig.load().channel_names


@pytest.fixture(scope="module")
def encoder() -> EncoderModel:
    return EncoderModel(DEFAULT_ENCODER)


@pytest.fixture(scope="module")
def models(tiny_artifact, encoder):
    cnn = Predictor.from_path(tiny_artifact)
    return cnn, AccuratePredictor(cnn, encoder)


def _score(path, predictor, chunk_s=7.0):
    return score_recording(path, predictor, FC, 1.0, SpeechConfig(), NAMES, chunk_s)


def _channel_audio(path: Path) -> np.ndarray:
    """Each channel at the model rate, resampled in one go: ``(n_channels, n)``."""
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.stack([soxr.resample(data[:, c], sr, FC.sample_rate, quality="HQ") for c in range(data.shape[1])])


@pytest.mark.parametrize("seconds,chunk_s", [(11.3, 3.0), (11.3, 60.0), (1.4, 3.0), (4.0, 2.5)])
def test_stream_gives_each_windows_samples(tmp_path, seconds, chunk_s):
    path = write_call(tmp_path / "a.wav", 16000, [[("speech", seconds)], [("silence", 1.0), ("speech", seconds - 1)]])
    whole = _channel_audio(path)
    plain = [ch for chunk in StreamAnalyzer(path, FC, 1.0, SpeechConfig(), NAMES, chunk_s) for ch in chunk]
    kept = [ch for chunk in StreamAnalyzer(path, FC, 1.0, SpeechConfig(), NAMES, chunk_s, keep_audio=True)
            for ch in chunk]
    assert [c.audio for c in plain] == [None] * len(plain)
    for a, b in zip(plain, kept):
        np.testing.assert_array_equal(a.features, b.features)   # the windows are unchanged
        c = NAMES(2).index(b.channel)
        for s, e, audio in zip(b.start_s, b.end_s, b.audio, strict=True):
            i, j = round(s * FC.sample_rate), round(e * FC.sample_rate)
            np.testing.assert_allclose(audio, whole[c][i:j], atol=1e-6)
    assert sum(len(c.audio) for c in kept) == sum(len(c.start_s) for c in kept)


def test_training_features_equal_serving_features(tmp_path, encoder):
    """The head's training input for a clip (training.encoder_head.clip_features, condition 8k:
    decoded and resampled as the job decodes) equals what serving computes for the same audio as
    one speech window of a call (StreamAnalyzer window samples -> EncoderModel.features)."""
    from training.corpora import Clip
    from training.encoder_head import clip_audio, clip_features

    path = write_call(tmp_path / "clip.wav", 16000, [[("speech", 1.9)]], seed=5)
    clip = Clip(str(path), "ravdess", "ravdess:01", "angry", "01", "05")
    train = clip_features([clip], encoder.encoder, encoder.head.settings, condition="8k")
    windows = [ch for chunk in StreamAnalyzer(path, FC, 1.0, SpeechConfig(), NAMES, 60.0, keep_audio=True)
               for ch in chunk]
    assert len(windows) == 1 and len(windows[0].audio) == 1
    np.testing.assert_array_equal(windows[0].audio[0], clip_audio(clip, "8k")[0])
    serve = encoder.features(windows[0].audio, FC.sample_rate)
    np.testing.assert_allclose(serve, train, atol=1e-6)
    assert train.shape == (1, 512)


def test_fused_channel_probabilities(tmp_path, models, encoder):
    cnn, accurate = models
    parts = [[("speech", 6.0), ("silence", 3.0), ("speech", 5.0)], [("silence", 4.0), ("speech", 10.0)]]
    path = write_call(tmp_path / "stereo.wav", 16000, parts, seed=2)
    plain, fused = _score(path, cnn), _score(path, accurate)
    whole = _channel_audio(path)
    for c, (a, b) in enumerate(zip(plain.channels, fused.channels)):
        assert a.channel == b.channel and np.array_equal(a.speech, b.speech) and a.speech.sum() >= 3
        sp = b.speech
        assert np.all(np.isnan(b.probs[~sp]))
        np.testing.assert_allclose(b.probs[sp].sum(1), 1, atol=1e-5)
        # the head changed them (in log space: the geometric mean barely moves a near-certain CNN)
        assert np.abs(np.log(b.probs[sp]) - np.log(a.probs[sp])).max() > 0.01
        # expected: the head over this channel's speech windows only, each row pooled with its
        # neighbours' in its run of speech (not across the silence), standardised together,
        # fused by the head file's rule
        segs = [whole[c][round(s * FC.sample_rate):round(e * FC.sample_rate)]
                for s, e in zip(b.start_s[sp], b.end_s[sp])]
        want = encoder.predict_channel(segs, FC.sample_rate, cnn_probs=a.probs[sp], start_s=b.start_s[sp], hop_s=1.0)
        np.testing.assert_allclose(b.probs[sp], want, atol=1e-5)
        # ... which is the head file's pooling, fusion rule and temperature, written out here
        h = encoder.head
        assert h.settings.context_windows == 3
        if c == 0:  # speech, silence, speech: two runs, which must not be pooled together
            assert np.diff(b.start_s[sp]).max() > 1.0
        rows = pool_context(encoder.features(segs, FC.sample_rate), b.start_s[sp], 1.0, 3)
        hp = np.maximum(h.predict_channel(rows).astype(np.float64), 1e-12)
        cp = np.maximum(a.probs[sp].astype(np.float64), 1e-12)
        w = h.cnn_weight
        z = np.log(w * cp + (1 - w) * hp) if h.fusion == "linear" else w * np.log(cp) + (1 - w) * np.log(hp)
        z = z - np.log(np.exp(z).sum(1, keepdims=True))                        # the fused probabilities
        e = np.exp((z - z.max(1, keepdims=True)) / h.temperature)
        np.testing.assert_allclose(b.probs[sp], e / e.sum(1, keepdims=True), atol=1e-5)
        # downstream columns follow the fused probabilities
        assert list(b.emotion[sp]) == [EMOTIONS[k] for k in b.probs[sp].argmax(1)]
    # the agent's probabilities do not depend on the customer's audio
    other = write_call(tmp_path / "other.wav", 16000, [parts[0], [("speech", 8.0), ("silence", 6.0)]], seed=2)
    again = _score(other, accurate)
    np.testing.assert_array_equal(again.channels[0].probs, fused.channels[0].probs)
    assert not np.array_equal(again.channels[1].speech, fused.channels[1].speech)


def test_mono_call_and_chunking(tmp_path, models):
    _, accurate = models
    path = write_call(tmp_path / "mono.wav", 8000, [[("speech", 9.0)]], seed=3)
    a, b = _score(path, accurate, chunk_s=3.0), _score(path, accurate, chunk_s=60.0)
    assert [c.channel for c in a.channels] == ["mono"]
    np.testing.assert_allclose(a.channels[0].probs, b.channels[0].probs, atol=1e-6)


def test_short_and_silent_channels(tmp_path, models, encoder):
    cnn, accurate = models
    # one speech window in the customer channel: too few to standardise by; the short-channel
    # head scores it, fused with the CNN (a head without one would keep the CNN's alone)
    path = write_call(tmp_path / "one.wav", 8000, [[("speech", 6.0)], [("silence", 5.2), ("speech", 0.8)]], seed=4)
    plain, fused = _score(path, cnn), _score(path, accurate)
    a, b = plain.channels[1], fused.channels[1]
    assert b.speech.sum() == 1 < MIN_CHANNEL_WINDOWS
    sp = b.speech
    whole = _channel_audio(path)[1]
    segs = [whole[round(s * FC.sample_rate):round(e * FC.sample_rate)] for s, e in zip(b.start_s[sp], b.end_s[sp])]
    rows = encoder.features(segs, FC.sample_rate)
    h = encoder.head
    np.testing.assert_allclose(b.probs[sp], fuse(a.probs[sp], h.short.predict(rows), h.cnn_weight, h.fusion,
                                                 h.temperature), atol=1e-5)
    # not the CNN's alone (log-probabilities: on synthetic speech both models are near-certain)
    assert np.abs(np.log(b.probs[sp]) - np.log(a.probs[sp])).max() > 0.1
    # a channel without speech: no model output, no error; the other channel is fused
    path = write_call(tmp_path / "quiet.wav", 8000, [[("speech", 6.0)], [("silence", 6.0)]], seed=4)
    rec = _score(path, accurate)
    assert not rec.channels[1].speech.any() and np.all(np.isnan(rec.channels[1].probs))
    assert rec.channels[0].speech.sum() >= MIN_CHANNEL_WINDOWS


def test_selection_and_versions(tmp_path, tiny_artifact):
    assert JobConfig.load().model_variant == "default"
    conf = tmp_path / "job.yaml"
    conf.write_text("model:\n  variant: accurate\n")
    assert JobConfig.load(conf).model_variant == "accurate"
    conf.write_text("model:\n  variant: fast\n")
    with pytest.raises(ConfigError, match="variant"):
        JobConfig.load(conf)
    with pytest.raises(ConfigError, match="variant"):
        read_bundle("fast", tiny_artifact)
    default, accurate = read_bundle("default", tiny_artifact), read_bundle("accurate", tiny_artifact)
    assert default.encoder is None and default.version == "tiny-test-1"
    head_version = json.loads((DEFAULT_ENCODER / "encoder_head.json").read_text())["training"]["version"]
    assert accurate.version == f"tiny-test-1+{head_version}" == accurate.meta.version
    loaded = load_scorer(accurate, batch_size=3)
    assert isinstance(loaded, AccuratePredictor) and loaded.batch_size == 3 and loaded.meta.version == accurate.version
    with pytest.raises(ArtifactError, match="encoder-head artifact"):
        read_bundle("accurate", tiny_artifact, tmp_path)


def test_workers_key_their_model_on_the_files_not_the_version(tmp_path, tiny_artifact):
    """Two artifacts with one version (``ser train`` twice in a minute, a copied folder whose
    weights were replaced) are two models: a reused worker must not serve the first for the second."""
    import keras

    from jobs import analyze_calls
    from ser_lib import artifact as art

    model = keras.models.load_model(tiny_artifact / art.MODEL_FILE)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel[:, ::-1].copy(), bias])  # the same shape, other outputs
    other = art.save(tmp_path / "other", model, art.load_meta(tiny_artifact))
    first, again, second = (read_bundle("default", p) for p in (tiny_artifact, tiny_artifact, other))
    assert first.version == second.version == "tiny-test-1"
    assert first.digest == again.digest != second.digest
    assert read_bundle("accurate", tiny_artifact).digest not in (first.digest, second.digest)

    x = np.random.default_rng(1).normal(size=(4, FC.frames_per_window, FC.n_features)).astype(np.float32)
    analyze_calls._PREDICTOR.clear()
    p1, loaded1 = analyze_calls._predictor(first, 8)
    p1_again, loaded_again = analyze_calls._predictor(again, 8)
    p2, loaded2 = analyze_calls._predictor(second, 8)
    assert loaded1 and not loaded_again and p1_again is p1 and loaded2
    assert not np.allclose(p1.predict(x), p2.predict(x))
    np.testing.assert_allclose(p2.predict(x), Predictor.from_path(other).predict(x), atol=1e-6)
    analyze_calls._PREDICTOR.clear()


def test_head_labels_must_match_the_cnns(tmp_path, tiny_artifact):
    import shutil

    art = tmp_path / "enc"
    shutil.copytree(DEFAULT_ENCODER, art)
    head = json.loads((art / "encoder_head.json").read_text())
    head["labels"] = list(reversed(head["labels"]))
    (art / "encoder_head.json").write_text(json.dumps(head))
    with pytest.raises(ArtifactError, match="labels"):
        read_bundle("accurate", tiny_artifact, art)


def test_ser_predict_with_the_accurate_variant(tmp_path, tiny_artifact):
    from click.testing import CliRunner

    from jobs.cli import cli

    path = write_call(tmp_path / "call.wav", 8000, [[("speech", 5.0)], [("silence", 1.0), ("speech", 4.0)]], seed=6)
    runs = {}
    for variant in ("default", "accurate"):
        res = CliRunner().invoke(cli, ["predict", str(path), "--model", str(tiny_artifact), "--variant", variant,
                                       "--json"])
        assert res.exit_code == 0, res.output
        runs[variant] = json.loads(res.output)
    assert runs["accurate"]["model_version"].startswith("tiny-test-1+enchead-")
    p = [f"p_{e}" for e in EMOTIONS]
    seg = {k: pd.DataFrame(v["segments"]) for k, v in runs.items()}
    speech = seg["accurate"]["is_speech"]
    np.testing.assert_allclose(seg["accurate"].loc[speech, p].sum(1), 1, atol=1e-5)
    assert not np.allclose(seg["accurate"].loc[speech, p], seg["default"].loc[speech, p])


@pytest.mark.spark
def test_job_runs_the_accurate_variant(spark, tmp_path, tiny_artifact):
    from jobs.analyze_calls import run

    d = tmp_path / "in"
    write_call(d / "stereo.wav", 8000, [[("speech", 5.0), ("silence", 2.0)], [("silence", 2.0), ("speech", 5.0)]],
               subtype="ULAW", seed=7)
    write_call(d / "mono.flac", 16000, [[("speech", 4.0)]], seed=8)
    conf = tmp_path / "job.yaml"
    conf.write_text("model:\n  variant: accurate\n")
    out = tmp_path / "out"
    summary = run(str(d), str(out), str(conf), model_path=str(tiny_artifact), spark=spark,
                  now=dt.datetime(2026, 12, 7, 9, tzinfo=dt.timezone.utc))
    assert summary["processed"] == 2 and summary["model_version"].startswith("tiny-test-1+enchead-")
    segments, calls = pd.read_parquet(out / "segments"), pd.read_parquet(out / "calls")
    assert set(segments["model_version"]) == set(calls["model_version"]) == {summary["model_version"]}
    # the job's rows equal ser predict's with the same model
    from ser_lib.one_recording import predict_file
    local = pd.DataFrame(predict_file(str(d / "mono.flac"), str(conf), str(tiny_artifact))["segments"])
    mono = segments[segments["source_path"].str.endswith("mono.flac")].sort_values("segment_index")
    p = [f"p_{e}" for e in EMOTIONS]
    np.testing.assert_allclose(mono[p].to_numpy(float), local[p].to_numpy(float), atol=1e-5)


def test_ser_serve_scores_uploads_with_the_chosen_variant(tmp_path, tiny_artifact):
    pytest.importorskip("flask", reason="needs the [web] install")
    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.web import create_app

    out = tmp_path / "out"
    (out / "_runs").mkdir(parents=True)  # a results root before its first run
    versions = {}
    for variant in (None, "default", "accurate"):
        app = create_app(str(out), str(tiny_artifact), tmpdir=str(tmp_path / f"tmp-{variant}"), variant=variant)
        versions[variant] = app.extensions["ser"]["scorer"].meta.version
    assert versions[None] == versions["default"] == "tiny-test-1"            # conf/job.yaml: default
    assert versions["accurate"].startswith("tiny-test-1+enchead-")
    with pytest.raises(ConfigError, match="variant"):
        create_app(str(out), str(tiny_artifact), tmpdir=str(tmp_path / "tmp-bad"), variant="fast")
    res = CliRunner().invoke(cli, ["serve", str(out), "--variant", "fast"])
    assert res.exit_code == 2 and "--variant" in res.output
    assert "--variant [default|accurate]" in CliRunner().invoke(cli, ["serve", "--help"]).output
