"""Smoothed timelines, emotion episodes and call measures (issue 17): the decoders on
hand-made probability sequences, episode merging, quarter shares and channel measures, and
the job's ``episodes/`` table (schema, one scoring path with ``ser predict``, supersede on
rerun, kill -9 and rerun, README queries)."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_lib.episodes import EpisodeConfig, channel_episodes
from ser_lib.errors import ConfigError
from ser_lib.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_lib.measures import channel_measures, quarter_shares
from ser_lib.smoothing import SmoothingConfig, smooth
from ser_lib.timeline import cells
from tests.conftest import write_call

REPO = Path(__file__).resolve().parents[1]
LAB = list(EMOTIONS)
N1 = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.timezone.utc)
N2 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)


def _probs(seq: list[str | None], p: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Window probabilities: ``p`` on the named emotion, the rest spread evenly; None = non-speech (NaN row)."""
    k = len(LAB)
    out = np.full((len(seq), k), (1 - p) / (k - 1))
    for i, e in enumerate(seq):
        if e is None:
            out[i] = np.nan
        else:
            out[i, LAB.index(e)] = p
    return out.astype(np.float32), np.array([e is not None for e in seq])


def _names(idx: np.ndarray) -> list[str | None]:
    return [LAB[i] if i >= 0 else None for i in idx]


# ---------------------------------------------------------------- smoothing
@pytest.mark.parametrize("method", ["viterbi", "median", "mean"])
def test_a_one_window_blip_is_absorbed(method):
    seq = ["neutral"] * 10 + ["angry"] + ["neutral"] * 10
    probs, speech = _probs(seq)
    got = _names(smooth(probs, speech, SmoothingConfig(method)))
    assert got == ["neutral"] * 21
    assert _names(smooth(probs, speech, SmoothingConfig("none"))) == seq  # raw windows keep the blip


@pytest.mark.parametrize("method", ["viterbi", "median", "mean"])
def test_a_sustained_change_is_kept(method):
    seq = ["neutral"] * 10 + ["angry"] * 10
    probs, speech = _probs(seq)
    assert _names(smooth(probs, speech, SmoothingConfig(method))) == seq


def test_viterbi_stickiness_decides_how_long_a_change_must_last():
    # 2 windows of a stronger emotion: kept by a loose chain, absorbed by a very sticky one
    seq = ["sad"] * 8 + ["happy"] * 2 + ["sad"] * 8
    probs, speech = _probs(seq, p=0.8)
    assert _names(smooth(probs, speech, SmoothingConfig("viterbi", self_transition=0.6))) == seq
    assert _names(smooth(probs, speech, SmoothingConfig("viterbi", self_transition=0.999))) == ["sad"] * 18


def test_non_speech_windows_stay_unlabelled_and_carry_the_state():
    # a short pause: the emotion carries over it (a weak window after it follows the context) ...
    seq = ["angry"] * 6 + [None] * 2 + ["angry"] * 6
    probs, speech = _probs(seq)
    weak = probs.copy()
    weak[8] = (1 - 0.3) / (len(LAB) - 1)
    weak[8, LAB.index("neutral")] = 0.3                     # weakly neutral right after the pause
    got = _names(smooth(weak, speech, SmoothingConfig("viterbi")))
    assert got[6:8] == [None, None] and got[8] == "angry"
    # ... a change after the pause is kept
    seq = ["angry"] * 6 + [None] * 2 + ["happy"] * 6
    probs, speech = _probs(seq)
    assert _names(smooth(probs, speech, SmoothingConfig("viterbi"))) == seq
    # no speech at all
    probs, speech = _probs([None] * 4)
    assert (smooth(probs, speech, SmoothingConfig("viterbi")) == -1).all()


def test_smoothing_config_is_validated():
    for bad in (dict(smoothing="kalman"), dict(self_transition=1.0), dict(self_transition=0),
                dict(filter_windows=4), dict(filter_windows=0)):
        with pytest.raises(ConfigError):
            SmoothingConfig(**bad)
    from ser_lib.config import JobConfig
    with pytest.raises(ConfigError, match="timeline.smoothing"):
        JobConfig.load(None, {"timeline": {"smoothing": "hmm"}})
    with pytest.raises(ConfigError, match="min_duration_s"):
        JobConfig.load(None, {"episodes": {"min_duration_s": -1}})
    cfg = JobConfig.load(None, {"timeline": {"smoothing": "median", "filter_windows": 7}})
    assert (cfg.timeline.smoothing, cfg.timeline.filter_windows) == ("median", 7)


# ---------------------------------------------------------------- episodes
def _episodes(seq, cfg=EpisodeConfig(), p=0.7):
    """Episodes of a channel of 2-s windows every 1 s labelled ``seq`` (None = non-speech)."""
    n = len(seq)
    start = np.arange(n, dtype=float)
    c0, c1 = cells(start, start + 2.0)
    probs, _ = _probs(seq, p)
    idx = np.array([LAB.index(e) if e else -1 for e in seq])
    return channel_episodes(c0, c1, idx, probs, LAB, cfg), (c0, c1)


def _brief(eps):
    return [(e["emotion"], e["start_s"], e["end_s"]) for e in eps]


def test_short_episode_merges_into_its_longer_neighbour():
    # windows start 0..12 s: cells [0,1.5), [1.5,2.5), ..., [11.5,14); the 2-s angry stretch goes to neutral (6.5 s)
    eps, _ = _episodes(["neutral"] * 6 + ["angry"] * 2 + ["sad"] * 5)
    assert _brief(eps) == [("neutral", 0.0, 8.5), ("sad", 8.5, 14.0)]
    eps, _ = _episodes(["neutral"] * 3 + ["angry"] * 2 + ["sad"] * 7)
    assert _brief(eps) == [("neutral", 0.0, 3.5), ("sad", 3.5, 13.0)]
    # a stretch as long as min_duration_s stays
    eps, _ = _episodes(["neutral"] * 6 + ["angry"] * 3 + ["sad"] * 5)
    assert [e["emotion"] for e in eps] == ["neutral", "angry", "sad"]
    assert [e["episode_index"] for e in eps] == [0, 1, 2]


def test_episodes_bridge_short_pauses_and_end_at_long_ones():
    eps, _ = _episodes(["happy"] * 4 + [None] + ["happy"] * 4)     # 1 s pause <= max_gap_s 2 s
    assert _brief(eps) == [("happy", 0.0, 10.0)] and eps[0]["duration_s"] == 10.0
    eps, _ = _episodes(["happy"] * 4 + [None] * 4 + ["sad"] + [None] * 4 + ["happy"] * 4)
    # the 1-s sad stretch touches nothing within 2 s: it stays an episode of its own
    assert _brief(eps) == [("happy", 0.0, 4.5), ("sad", 8.5, 9.5), ("happy", 13.5, 18.0)]
    eps, _ = _episodes(["happy"] * 4 + [None] * 4 + ["happy"] * 4, EpisodeConfig(max_gap_s=5.0))
    assert len(eps) == 1
    assert _episodes([None] * 5)[0] == []


def test_episode_confidences_are_the_raw_probabilities_of_its_emotion():
    seq = ["neutral"] * 5 + ["angry"] + ["neutral"] * 5               # the angry window is merged
    eps, (c0, c1) = _episodes(seq)
    assert len(eps) == 1 and eps[0]["emotion"] == "neutral"
    probs, _ = _probs(seq)
    p = probs[:, LAB.index("neutral")].astype(float)
    assert eps[0]["mean_confidence"] == pytest.approx(np.average(p, weights=c1 - c0))
    assert eps[0]["peak_confidence"] == pytest.approx(0.7)
    assert eps[0]["mean_confidence"] < 0.7


# ---------------------------------------------------------------- measures
def _tl(channel, *parts):
    return [{"channel": channel, "start_s": a, "end_s": b, "emotion": e, "confidence": None} for a, b, e in parts]


def test_quarter_shares():
    tl = (_tl("agent", (0, 15, "angry"), (15, 17, None), (17, 20, "happy"), (20, 40, "neutral"))
          + _tl("customer", (0, 30, None), (30, 40, "sad")))
    q = pd.DataFrame(quarter_shares(tl, 40.0, LAB)).set_index(["channel", "quarter"])
    assert list(q.index) == [("agent", i) for i in range(1, 5)] + [("customer", i) for i in range(1, 5)]
    assert q.loc[("agent", 1), "share_angry"] == 1 and q.loc[("agent", 1), "speech_s"] == 10
    assert q.loc[("agent", 2), "speech_s"] == 8
    assert q.loc[("agent", 2), "share_angry"] == pytest.approx(5 / 8)
    assert q.loc[("agent", 2), "share_happy"] == pytest.approx(3 / 8)
    assert q.loc[("agent", 3), "share_neutral"] == 1 and q.loc[("agent", 4), "share_neutral"] == 1
    assert (q.loc[("customer", 1), [f"share_{e}" for e in LAB]] == 0).all()
    assert q.loc[("customer", 1), "speech_s"] == 0 and q.loc[("customer", 4), "share_sad"] == 1
    assert (q[["start_s", "end_s"]].loc["agent"].to_numpy() == [[0, 10], [10, 20], [20, 30], [30, 40]]).all()
    shares = q[[f"share_{e}" for e in LAB]].sum(axis=1)
    assert np.allclose(shares[q["speech_s"] > 0], 1)


def test_channel_measures():
    tl = (_tl("customer", (0, 10, "neutral"), (10, 40, "angry"), (40, 45, None), (45, 55, "neutral"))
          + _tl("agent", (0, 55, None)))
    eps = {"customer": [{"emotion": "neutral", "start_s": 0.0, "duration_s": 10.0},
                        {"emotion": "angry", "start_s": 10.0, "duration_s": 30.0},
                        {"emotion": "neutral", "start_s": 45.0, "duration_s": 10.0}]}
    m = channel_measures(tl, eps, end_speech_s=30.0)
    assert m["channel_negative_episodes"] == {"customer": 1, "agent": 0}
    assert m["channel_longest_negative_s"] == {"customer": 30.0, "agent": 0.0}
    assert m["channel_first_negative_s"] == {"customer": 10.0, "agent": None}
    # the last 30 s of speech: 10 s neutral (45-55) and 20 s angry (20-40)
    assert m["channel_end_negative_share"]["customer"] == pytest.approx(20 / 30)
    assert m["channel_ends_negative"] == {"customer": True, "agent": None}
    m = channel_measures(tl, eps, end_speech_s=15.0)  # 10 s neutral, 5 s angry
    assert m["channel_end_negative_share"]["customer"] == pytest.approx(1 / 3)
    assert m["channel_ends_negative"]["customer"] is False


# ---------------------------------------------------------------- the job
def _bright(y: np.ndarray, sr: int) -> np.ndarray:
    """Speech-like sound moved up in frequency (ring modulation): a higher zero-crossing rate."""
    t = np.arange(len(y)) / sr
    return (y * np.cos(2 * np.pi * 1800 * t) * 1.4).astype(np.float32)


def write_emotional_call(path: Path, sr: int, channels: list[list[tuple[str, float]]], seed: int = 0,
                         subtype: str = "PCM_16") -> Path:
    """A recording whose channels are sequences of ("calm" | "bright" | "silence", seconds);
    the ``zcr_artifact`` model calls bright speech angry and calm speech neutral."""
    return write_call(path, sr, channels, subtype, seed,
                      shape=lambda kind, y, sr: _bright(y, sr) if kind == "bright" else y)


@pytest.fixture(scope="module")
def zcr_artifact(tmp_path_factory) -> Path:
    """A hand-set model: the window's mean zero-crossing rate decides angry (high) or neutral (low)."""
    import keras

    from ser_lib import artifact as art
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    fc = FeatureConfig()
    inp = keras.Input((fc.frames_per_window, fc.n_features))
    x = keras.layers.GlobalAveragePooling1D()(inp)
    dense = keras.layers.Dense(len(LAB), activation="softmax")
    model = keras.Model(inp, dense(x))
    w = np.zeros((fc.n_features, len(LAB)), np.float32)
    b = np.full(len(LAB), -6.0, np.float32)
    zcr = fc.feature_names().index("zcr")
    w[zcr, LAB.index("angry")], b[LAB.index("angry")] = 60.0, -24.0      # zcr 0.48 -> +4.8, 0.32 -> -4.8
    w[zcr, LAB.index("neutral")], b[LAB.index("neutral")] = -60.0, 24.0
    dense.set_weights([w, b])
    meta = art.ArtifactMeta("zcr-test-1", LAB, fc, SpeechConfig(), np.zeros(fc.n_features, np.float32),
                            np.ones(fc.n_features, np.float32))
    return art.save(tmp_path_factory.mktemp("artifact") / "zcr", model, meta)


def test_the_zcr_model_tells_bright_from_calm_speech(zcr_artifact, tmp_path):
    from ser_lib.one_recording import predict_file
    f = write_emotional_call(tmp_path / "x.wav", 8000, [[("calm", 8), ("bright", 8)]])
    seg = pd.DataFrame(predict_file(str(f), model_path=str(zcr_artifact))["segments"])
    assert set(seg.loc[seg["end_s"] <= 7.5, "emotion"]) == {"neutral"}
    assert set(seg.loc[seg["start_s"] >= 8.5, "emotion"]) == {"angry"}


def _read(out: Path, table: str) -> pd.DataFrame:
    from jobs.report import read_table
    return read_table(str(out), table)


@pytest.fixture(scope="module")
def nights(spark, zcr_artifact, tmp_path_factory):
    """Two nights over one input root: night 2 adds calls and changes b.wav.

    agent = left, customer = right; the customer's speech (s):
    a: 25 angry; b night 1: 12 angry then 15 calm, night 2: 24 angry; d: 6 angry then 20 calm; c: mono.
    The agent speaks before the customer: calm in a and b (night 2), angry in b (night 1) and d.
    """
    from jobs.analyze_calls import run
    d = tmp_path_factory.mktemp("in")
    out = tmp_path_factory.mktemp("out")
    sr = 8000
    write_emotional_call(d / "a.wav", sr, [[("calm", 8), ("silence", 26)], [("silence", 9), ("bright", 25)]],
                         seed=1, subtype="ULAW")
    write_emotional_call(d / "b.wav", sr, [[("bright", 6), ("silence", 28)],
                                           [("silence", 7), ("bright", 12), ("calm", 15)]], seed=2, subtype="ULAW")
    s1 = run(str(d), str(out), model_path=str(zcr_artifact), spark=spark, now=N1)
    night1 = {t: _read(out, t) for t in ("calls", "episodes")}
    write_emotional_call(d / "b.wav", sr, [[("calm", 10), ("silence", 25)], [("silence", 11), ("bright", 24)]],
                         seed=3, subtype="ULAW")
    write_emotional_call(d / "c.wav", 16000, [[("calm", 6), ("bright", 6)]], seed=4)
    write_emotional_call(d / "d.wav", sr, [[("bright", 12), ("silence", 27)],
                                           [("silence", 13), ("bright", 6), ("calm", 20)]], seed=5, subtype="ULAW")
    s2 = run(str(d), str(out), model_path=str(zcr_artifact), spark=spark, now=N2)
    return d, out, s1, s2, night1


def _by_name(df: pd.DataFrame, calls: pd.DataFrame) -> pd.Series:
    names = dict(zip(calls["call_id"], calls["source_path"].map(os.path.basename)))
    return df["call_id"].map(names)


def test_episodes_table_schema_and_partitions(nights):
    import pyarrow.parquet as pq
    d, out, s1, s2, night1 = nights
    files = sorted((out / "episodes").rglob("*.parquet"))
    assert {f.parent.parent.name for f in files} == {"run_date=2026-11-22", "run_date=2026-11-23"}
    schema = pq.read_schema(files[0])
    assert schema.names == ["call_id", "channel", "episode_index", "emotion", "start_s", "end_s", "duration_s",
                            "mean_confidence", "peak_confidence", "model_version"]
    assert str(schema.field("episode_index").type) == "int32" and str(schema.field("duration_s").type) == "double"
    eps, calls = _read(out, "episodes"), _read(out, "calls")
    assert not eps.duplicated(["call_id", "channel", "episode_index"]).any()
    assert set(eps["call_id"]) == set(calls["call_id"])
    # b.wav changed on night 2: its night-1 episodes were superseded with its other rows
    b = calls.loc[calls["source_path"].str.endswith("b.wav")].iloc[0]
    assert b["run_id"] == s2["run_id"] and set(eps.loc[eps["call_id"] == b["call_id"], "run_id"]) == {s2["run_id"]}
    assert (eps.groupby("call_id")["run_id"].nunique() == 1).all()
    assert ((eps["end_s"] - eps["start_s"] - eps["duration_s"]).abs() < 1e-9).all()
    assert ((eps["mean_confidence"] <= eps["peak_confidence"] + 1e-9) & (eps["peak_confidence"] <= 1)).all()
    # what the calls were built from
    cust = eps[(eps["channel"] == "customer")].assign(name=lambda x: _by_name(x, calls))
    a = cust[cust["name"] == "a.wav"]
    assert list(a["emotion"]) == ["angry"] and a["duration_s"].iloc[0] == pytest.approx(25, abs=1.5)
    night1_b = night1["episodes"][(night1["episodes"]["channel"] == "customer")
                                  & (_by_name(night1["episodes"], night1["calls"]) == "b.wav")]
    assert list(night1_b["emotion"]) == ["angry", "neutral"]


def test_timeline_and_measures_follow_the_smoothed_labels(nights):
    from ser_lib.config import JobConfig
    _, out, _, _, _ = nights
    segs, calls, eps = _read(out, "segments"), _read(out, "calls"), _read(out, "episodes")
    cfg = JobConfig.load()
    for call in calls.itertuples():
        for ch, g in segs[segs["call_id"] == call.call_id].groupby("channel"):
            g = g.sort_values("segment_index")
            probs = g[[f"p_{e}" for e in LAB]].to_numpy(dtype=float)
            want = _names(smooth(probs, g["is_speech"].to_numpy(), cfg.timeline))
            assert [None if pd.isna(e) else e for e in g["emotion_smoothed"]] == want
            # the timeline is the smoothed labels merged
            tl = [t for t in call.timeline if t["channel"] == ch]
            seconds = {e: sum(t["end_s"] - t["start_s"] for t in tl if t["emotion"] == e) for e in LAB}
            c0, c1 = cells(g["start_s"].to_numpy(), g["end_s"].to_numpy())
            for e in LAB:
                assert seconds[e] == pytest.approx(float(((c1 - c0) * (np.array(want, dtype=object) == e)).sum()))
        quarters = pd.DataFrame(list(call.quarters))
        assert sorted(set(quarters["quarter"])) == [1, 2, 3, 4]
        assert quarters.groupby("channel")["speech_s"].sum().to_dict() == pytest.approx(dict(call.channel_speech_s))
        mine = eps[eps["call_id"] == call.call_id]
        for ch in dict(call.channel_speech_s):
            neg = mine[(mine["channel"] == ch) & mine["emotion"].isin(NEGATIVE_EMOTIONS)]
            assert dict(call.channel_negative_episodes)[ch] == len(neg)
            assert dict(call.channel_longest_negative_s)[ch] == pytest.approx(neg["duration_s"].max() if len(neg)
                                                                               else 0.0)
    a = calls[calls["source_path"].str.endswith("a.wav")].iloc[0]
    assert dict(a["channel_ends_negative"])["customer"] is True
    assert dict(a["channel_first_negative_s"])["customer"] == pytest.approx(9, abs=1.5)
    d_ = calls[calls["source_path"].str.endswith("d.wav")].iloc[0]
    assert not dict(d_["channel_ends_negative"])["customer"]


def test_ser_predict_gives_the_jobs_episodes_and_measures(nights, zcr_artifact):
    from ser_lib.one_recording import predict_file
    d, out, _, _, _ = nights
    calls, eps = _read(out, "calls"), _read(out, "episodes")
    for name in ("a.wav", "c.wav"):
        call = calls[calls["source_path"].str.endswith(name)].iloc[0]
        res = predict_file(str(d / name), model_path=str(zcr_artifact))
        job = eps[eps["call_id"] == call["call_id"]].sort_values(["channel", "episode_index"])
        mine = pd.DataFrame(res["episodes"]).sort_values(["channel", "episode_index"])
        assert len(mine) == len(job) > 0
        for col in ["channel", "episode_index", "emotion"]:
            assert mine[col].tolist() == job[col].tolist()
        for col in ["start_s", "end_s", "duration_s", "mean_confidence", "peak_confidence"]:
            np.testing.assert_allclose(mine[col], job[col], rtol=1e-5, atol=1e-6)
        assert res["channel_ends_negative"] == dict(call["channel_ends_negative"])
        pd.testing.assert_frame_equal(pd.DataFrame([dict(q) for q in call["quarters"]]),
                                      pd.DataFrame(res["quarters"]), rtol=1e-6, check_dtype=False)


def test_report_prints_and_draws_episodes(nights, tmp_path):
    from click.testing import CliRunner

    from jobs.cli import cli
    _, out, _, _, _ = nights
    calls, eps = _read(out, "calls"), _read(out, "episodes")
    cid = calls.loc[calls["source_path"].str.endswith("a.wav"), "call_id"].iloc[0]
    png = tmp_path / "a.png"
    res = CliRunner().invoke(cli, ["report", str(out), "--call", cid, "--png", str(png)])
    assert res.exit_code == 0, res.output
    mine = eps[eps["call_id"] == cid]
    assert f"episodes ({len(mine)}):" in res.output
    lines = [ln for ln in res.output.splitlines() if "confidence mean" in ln]
    assert len(lines) == len(mine) and any("customer" in ln and "angry" in ln for ln in lines)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from jobs.report import call_episodes, draw_timeline, find_call
    call = find_call(str(out), cid)
    fig = draw_timeline(call, call_episodes(str(out), call))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["agent", "agent episodes", "customer", "customer episodes"]


def test_readme_episode_queries(spark, nights):
    """The README's episode and measure queries (DuckDB and Spark SQL) agree with pandas."""
    import duckdb

    from tests.conftest import readme_sql_blocks
    _, out, _, _, _ = nights
    calls, eps = _read(out, "calls"), _read(out, "episodes")
    ok = calls[calls["status"] == "ok"]
    cust = eps[(eps["channel"] == "customer") & (eps["emotion"] == "angry") & (eps["duration_s"] > 20)]
    want_long = sorted(set(cust["call_id"]))
    assert sorted(_by_name(cust, calls).unique()) == ["a.wav", "b.wav"]
    ends = ok.assign(e=ok["channel_ends_negative"].map(lambda m: dict(m or {}).get("customer")))
    ends = ends[ends["e"].notna()]
    want_ends = ends.groupby("run_date")["e"].mean().to_dict()
    assert want_ends == {"2026-11-22": 1.0, "2026-11-23": 0.5}
    first = {r.call_id: dict(r.channel_first_negative_s).get("customer") for r in ok.itertuples()}
    want_before = {}
    for cid, t in first.items():
        if t is None or pd.isna(t):
            continue
        ag = eps[(eps["call_id"] == cid) & (eps["channel"] == "agent") & (eps["end_s"] > t - 30) & (eps["start_s"] < t)]
        for e in ag.itertuples():
            want_before[(cid, e.emotion)] = want_before.get((cid, e.emotion), 0) + min(e.end_s, t) - max(e.start_s, t - 30)
    assert {e for _, e in want_before} == {"neutral", "angry"}

    def check(results):
        long_, ends_, before = results
        assert sorted(long_["call_id"]) == want_long
        assert {str(k)[:10]: v for k, v in zip(ends_["run_date"], ends_["share_ending_negative"])} == \
            pytest.approx(want_ends)
        got = {(r.call_id, r.emotion): r.agent_s for r in before.itertuples()}
        assert got == pytest.approx(want_before)

    blocks = readme_sql_blocks()
    markers = ("duration_s > 20", "share_ending_negative", "agent_s")
    spark_res = [spark.sql(s.replace("out/demo/results", str(out))).toPandas() for s in blocks["spark"]]
    check([next(r for s, r in zip(blocks["spark"], spark_res) if m in s) for m in markers])
    con = duckdb.connect()
    duck_res = [con.sql(s.replace("out/demo/results", str(out))) for s in blocks["duckdb"]]
    duck_res = [r.df() if r is not None else None for r in duck_res]
    check([next(r for s, r in zip(blocks["duckdb"], duck_res) if m in s) for m in markers])


# ---------------------------------------------------------------- kill -9 and rerun
def _canon(df: pd.DataFrame, keys) -> pd.DataFrame:
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, default=str,
                                                   sort_keys=True) if isinstance(v, (list, dict, np.ndarray)) else v)
    return df.sort_values(keys).reset_index(drop=True)[sorted(df.columns)]


def _assert_same(a: Path, b: Path):
    for table, keys in (("episodes", ["call_id", "channel", "episode_index"]), ("calls", ["call_id"]),
                        ("segments", ["call_id", "channel", "segment_index"])):
        ta, tb = _read(a, table), _read(b, table)
        assert len(ta) == len(tb) > 0, table
        pd.testing.assert_frame_equal(_canon(ta, keys), _canon(tb, keys), check_exact=True, obj=table)


def test_kill_9_then_rerun_writes_the_same_episodes(spark, zcr_artifact, tmp_path):
    from jobs import commit
    from jobs.analyze_calls import run
    d = tmp_path / "in"
    write_emotional_call(d / "k0.wav", 8000, [[("calm", 5), ("silence", 6)], [("silence", 5), ("bright", 6)]],
                         seed=1, subtype="ULAW")
    write_emotional_call(d / "k1.wav", 16000, [[("bright", 4), ("calm", 5)]], seed=2)
    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc)
    kw = dict(model_path=str(zcr_artifact), spark=spark, now=now, run_id="nightly-1")
    ref = tmp_path / "ref"
    run(str(d), str(ref), **kw)

    out = tmp_path / "out-killed"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SER_CRASH_AFTER": "committed"}
    res = subprocess.run([sys.executable, "-m", "jobs.analyze_calls", "--input", str(d), "--output", str(out),
                          "--model", str(zcr_artifact), "--master", "local[2]", "--run-id", "nightly-1",
                          "--run-date", "2026-11-22"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == -9, res.stderr[-2000:]
    rec = json.loads((out / "_runs" / "nightly-1.json").read_text())
    assert rec["state"] == "committed" and any(a["dst"].startswith("episodes/") for a in rec["actions"])
    assert not (out / "episodes").exists(), "committed but not applied: the episodes are still staged"
    staged = list((out / "_staging").rglob("episodes/*/*/*.parquet"))
    assert len(staged) == 1
    again = run(str(d), str(out), **{**kw, "run_id": None})  # nightly-1 is committed: a new run
    assert again["recovered_runs"] == ["nightly-1"] and again["processed"] == 0
    _assert_same(ref, out)

    out = tmp_path / "out-staged"

    def boom(at):
        if at == "staged":
            raise KeyboardInterrupt("simulated kill after staging")
    commit.CRASH_HOOK = boom
    try:
        with pytest.raises(KeyboardInterrupt):
            run(str(d), str(out), **kw)
    finally:
        commit.CRASH_HOOK = None
    assert not (out / "episodes").exists() and not (out / "_runs").exists()
    assert run(str(d), str(out), **kw)["recovered_runs"] == []
    _assert_same(ref, out)
