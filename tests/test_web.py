"""``ser serve``: routes through Flask's test client, the command itself, and a real browser
(headless Chromium) over a results root that the job writes here."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jobs.report import read_table
from tests.conftest import write_call

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "out"


@pytest.fixture(scope="module")
def conf(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("conf") / "job.yaml"
    p.write_text("input:\n  chunk_s: 60.0\n")
    return p


@pytest.fixture(scope="module")
def web_out(spark, tiny_artifact, conf, tmp_path_factory):
    """A results root with two committed runs (2026-11-20: stereo mu-law, mono PCM, a zip
    member, a corrupt file; 2026-11-21: one FLAC) and a partition no commit record owns."""
    from jobs.analyze_calls import run
    a = tmp_path_factory.mktemp("night-a")
    write_call(a / "queue1" / "stereo_ulaw.wav", 8000,
               [[("speech", 4), ("silence", 4), ("speech", 4)], [("silence", 3), ("speech", 7), ("silence", 2)]],
               subtype="ULAW", seed=2)
    write_call(a / "queue2" / "mono16k.wav", 16000, [[("speech", 5), ("silence", 3), ("speech", 2)]], seed=1)
    member = write_call(tmp_path_factory.mktemp("m") / "member.wav", 8000, [[("speech", 3), ("silence", 2)]], seed=3)
    with zipfile.ZipFile(a / "batch.zip", "w") as z:
        z.write(member, "agents/member.wav")
    (a / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    b = tmp_path_factory.mktemp("night-b")
    write_call(b / "queue3" / "late.flac", 22050, [[("speech", 3.5)]], seed=4)

    out = tmp_path_factory.mktemp("out")
    ra = run(str(a), str(out), str(conf), model_path=str(tiny_artifact), spark=spark,
             now=dt.datetime(2026, 11, 20, 3, tzinfo=dt.timezone.utc))
    rb = run(str(b), str(out), str(conf), model_path=str(tiny_artifact), spark=spark,
             now=dt.datetime(2026, 11, 21, 3, tzinfo=dt.timezone.utc))
    # a partition without a commit record (a run killed before its commit): never shown
    ghost = out / "calls" / "run_date=2026-11-22" / "run_id=ghost"
    ghost.mkdir(parents=True)
    shutil.copy(next((out / "calls" / "run_date=2026-11-21").rglob("*.parquet")), ghost / "part-0.parquet")
    calls = read_table(str(out), "calls")  # the committed calls, read by ser report's reader
    segments = read_table(str(out), "segments")
    return {"out": out, "a": a, "b": b, "runs": [ra, rb], "calls": calls, "segments": segments,
            "member_bytes": member.read_bytes()}


@pytest.fixture(scope="module")
def app(web_out, tiny_artifact, conf, tmp_path_factory):
    from jobs.web import create_app
    return create_app(str(web_out["out"]), str(tiny_artifact), str(conf),
                      tmpdir=str(tmp_path_factory.mktemp("serve-tmp")))


@pytest.fixture()
def client(app):
    return app.test_client()


def _id(web_out, name: str) -> str:
    c = web_out["calls"]
    names = [Path(p).name if not isinstance(m, str) else m.split("/")[-1] for p, m in zip(c["source_path"], c["member"])]
    return c.loc[[n == name for n in names], "call_id"].iloc[0]


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ---------------------------------------------------------------- calls list
def test_calls_page_lists_the_committed_calls(client, web_out):
    r = client.get("/")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for name in ("queue1/stereo_ulaw.wav", "queue2/mono16k.wav", "batch.zip!agents/member.wav", "corrupt.wav",
                 "queue3/late.flac"):
        assert name in html
    assert f"{len(web_out['calls'])} calls" in html
    assert "failed" in html and "corrupt" in html.split("corrupt.wav", 1)[1]  # the reason is shown


def test_api_lists_each_committed_call_once(client, web_out):
    got = client.get("/api/calls?per_page=500").get_json()
    calls = web_out["calls"]
    assert got["total"] == len(calls) == 5
    assert sorted(c["call_id"] for c in got["calls"]) == sorted(calls["call_id"])  # the ghost partition is not read
    row = next(c for c in got["calls"] if c["call_id"] == _id(web_out, "stereo_ulaw.wav"))
    truth = calls.set_index("call_id").loc[row["call_id"]]
    assert row["duration_s"] == pytest.approx(truth["duration_s"])
    assert row["channel_speech_s"] == pytest.approx(dict(truth["channel_speech_s"]))
    assert row["channel_dominant_emotion"] == dict(truth["channel_dominant_emotion"])
    neg = sum(truth[f"share_{e}"] for e in ("angry", "disgust", "fear", "sad"))
    assert row["negative_share"] == pytest.approx(neg)
    failed = next(c for c in got["calls"] if c["status"] == "failed")
    assert failed["error"].split(":")[0] in ("corrupt", "unsupported") and failed["negative_share"] is None


def test_api_filters_match_the_tables(client, web_out):
    calls = web_out["calls"]

    def ids(query):
        r = client.get("/api/calls?per_page=500&" + query)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert body["total"] == len(body["calls"])
        return {c["call_id"] for c in body["calls"]}

    assert ids("status=failed") == set(calls.loc[calls["status"] == "failed", "call_id"])
    assert ids("date_from=2026-11-21") == set(calls.loc[calls["run_date"] == "2026-11-21", "call_id"])
    assert ids("date_to=2026-11-20") == set(calls.loc[calls["run_date"] == "2026-11-20", "call_id"])
    assert ids("date_from=2026-11-22") == set()
    assert ids(f"run_id={web_out['runs'][1]['run_id']}") == {_id(web_out, "late.flac")}
    assert ids("q=QUEUE") == {_id(web_out, n) for n in ("stereo_ulaw.wav", "mono16k.wav", "late.flac")}
    assert ids("q=agents/member") == {_id(web_out, "member.wav")}
    for emotion in set(calls["dominant_emotion"].dropna()):
        assert ids(f"emotion={emotion}") == set(calls.loc[calls["dominant_emotion"] == emotion, "call_id"])
    stereo = calls.set_index("call_id").loc[_id(web_out, "stereo_ulaw.wav")]
    cust = dict(stereo["channel_dominant_emotion"])["customer"]
    expect = {cid for cid, m in zip(calls["call_id"], calls["channel_dominant_emotion"])
              if m is not None and dict(m).get("customer") == cust}
    assert ids(f"emotion={cust}&channel=customer") == expect


def test_api_sorts_and_pages(client, web_out):
    calls = web_out["calls"].sort_values(["duration_s", "call_id"], na_position="last")
    full = client.get("/api/calls?sort=duration&order=asc&per_page=500").get_json()["calls"]
    durations = [c["duration_s"] for c in full if c["duration_s"] is not None]
    assert durations == sorted(durations) and full[-1]["duration_s"] is None  # failed: no duration, last
    assert [c["call_id"] for c in full if c["duration_s"] is not None] == \
        calls.loc[calls["duration_s"].notna(), "call_id"].tolist()
    paged = []
    for page in (1, 2, 3):
        body = client.get(f"/api/calls?sort=duration&order=asc&per_page=2&page={page}").get_json()
        assert body["total"] == 5
        paged += body["calls"]
    assert [c["call_id"] for c in paged] == [c["call_id"] for c in full]
    desc = client.get("/api/calls?sort=file&order=desc&per_page=500").get_json()["calls"]
    assert [c["source"] for c in desc] == sorted((c["source"] for c in full), reverse=True)


@pytest.mark.parametrize("query, word", [("status=bogus", "status"), ("emotion=joy", "emotion"),
                                         ("date_from=2026-13-01", "date_from"), ("sort=call_id;drop", "sort"),
                                         ("per_page=100000", "per_page"), ("page=0", "page")])
def test_bad_filters_are_clear_errors(client, query, word):
    r = client.get("/api/calls?" + query)
    assert r.status_code == 400 and word in r.get_json()["error"]
    page = client.get("/?" + query)
    assert page.status_code == 400 and word in page.get_data(as_text=True)


# ---------------------------------------------------------------- one call
def test_call_api_has_the_jobs_segments_and_timeline(client, web_out):
    cid = _id(web_out, "stereo_ulaw.wav")
    got = client.get(f"/api/calls/{cid}").get_json()
    truth = web_out["calls"].set_index("call_id").loc[cid]
    seg = web_out["segments"]
    seg = seg[seg["call_id"] == cid]
    assert len(got["segments"]) == len(seg) == truth["n_segments"]
    assert [s["channel"] for s in got["segments"]] == ["agent"] * (len(seg) // 2) + ["customer"] * (len(seg) // 2)
    mine = pd.DataFrame(got["segments"]).sort_values(["channel", "segment_index"]).reset_index(drop=True)
    theirs = seg.sort_values(["channel", "segment_index"]).reset_index(drop=True)
    np.testing.assert_allclose(mine["start_s"], theirs["start_s"])
    assert mine["emotion"].tolist() == [None if pd.isna(e) else e for e in theirs["emotion"]]
    assert [(t["channel"], t["emotion"]) for t in got["timeline"]] == [(t["channel"], t["emotion"])
                                                                        for t in truth["timeline"]]
    assert got["audio_url"] == f"/calls/{cid}/audio" and got["run_date"] == "2026-11-20"


def test_call_page_draws_both_lanes_from_the_timeline(client, web_out):
    cid = _id(web_out, "stereo_ulaw.wav")
    html = client.get(f"/calls/{cid}").get_data(as_text=True)
    blob = html.split('data-role="call-data">', 1)[1].split("</script>", 1)[0]
    data = json.loads(blob)
    assert data["channels"] == ["agent", "customer"] and data["audio_url"] == f"/calls/{cid}/audio"
    assert {e["emotion"] for e in data["timeline"]} - {None} <= set(data["labels"])
    assert None in {e["emotion"] for e in data["timeline"]}  # the silences are drawn as no speech
    assert "/vendor/plotly.min.js" in html and "Download CSV" in html and "confidence" in html


def _call_data(html: str) -> dict:
    return json.loads(html.split('data-role="call-data">', 1)[1].split("</script>", 1)[0])


def _with_most_episodes(web_out) -> str:
    eps = read_table(str(web_out["out"]), "episodes")
    return eps["call_id"].value_counts().index[0]


def test_call_page_agrees_with_the_tables(client, web_out):
    """Both emotions labelled (raw per window, smoothed as the timeline counts), the call's
    episodes listed and outlined, and per-channel headline figures equal to the calls row."""
    from ser_lib.timeline import clock
    cid = _with_most_episodes(web_out)
    html = client.get(f"/calls/{cid}").get_data(as_text=True)
    data = _call_data(html)
    eps = read_table(str(web_out["out"]), "episodes")
    mine = eps[eps["call_id"] == cid].sort_values(["channel", "start_s"])
    assert len(mine) and len(data["episodes"]) == len(mine)
    assert sorted((e["channel"], e["emotion"], round(e["start_s"], 3)) for e in data["episodes"]) == \
        sorted(zip(mine["channel"], mine["emotion"], mine["start_s"].round(3)))
    assert html.count('<tr data-start="') == len(mine)  # the episode list
    seg = web_out["segments"]
    seg = seg[seg["call_id"] == cid].sort_values(["channel", "segment_index"])
    assert [s["emotion_smoothed"] for s in sorted(data["segments"], key=lambda s: (s["channel"], s["segment_index"]))] \
        == [None if not isinstance(e, str) else e for e in seg["emotion_smoothed"]]
    assert "emotion (window, raw)" in html and "emotion (smoothed, timeline)" in html
    call = web_out["calls"].set_index("call_id").loc[cid]
    assert "Speech, all channels" not in html and "Speech per channel" in html
    for ch, speech in dict(call["channel_speech_s"]).items():
        figure = html.split(f'data-channel="{ch}" data-figure="speech">', 1)[1].split("</div>", 1)[0]
        assert f"<b>{clock(speech)}</b>" in figure and "% of the call" in figure
        dom = html.split(f'data-channel="{ch}" data-figure="dominant">', 1)[1].split("</div>", 1)[0]
        assert f">{dict(call['channel_dominant_emotion'])[ch]}</span>" in dom


def test_call_page_shows_talk_spurts_and_conversation_measures(client, web_out):
    """The turns table's spurts go to the plot (a talk lane per channel) and the calls row's
    measures to a card; an upload gets its own spurts from the scoring."""
    import pandas as pd
    cid = _id(web_out, "stereo_ulaw.wav")
    html = client.get(f"/calls/{cid}").get_data(as_text=True)
    data = json.loads(html.split('data-role="call-data">', 1)[1].split("</script>", 1)[0])
    turns = pd.read_parquet(web_out["out"] / "turns")
    want = sorted((r.channel, r.start_s, r.end_s) for r in turns[turns["call_id"] == cid].itertuples())
    assert want and sorted((t["channel"], t["start_s"], t["end_s"]) for t in data["turns"]) == want
    assert {t["channel"] for t in data["turns"]} == {"agent", "customer"}
    card = html.split('data-role="conversation"', 1)[1].split("</div></div>", 1)[0]
    call = next(c for c in web_out["calls"].to_dict("records") if c["call_id"] == cid)
    from jobs.web.common import duration
    assert f">{duration(call['non_talk_s'])}<" in card and "overtalk" in card and "interruption" in card
    assert "LUFS" in card
    mono = _id(web_out, "mono16k.wav")
    card = client.get(f"/calls/{mono}").get_data(as_text=True).split('data-role="conversation"', 1)[1]
    assert "overtalk" not in card.split("</div></div>", 1)[0] and "interruption" not in card.split("</div></div>", 1)[0]


def test_call_page_shows_arousal_per_channel(client, web_out):
    """The calls row's arousal measures go to a card: mean, peak, raised voice and the four quarters per channel."""
    cid = _id(web_out, "stereo_ulaw.wav")
    html = client.get(f"/calls/{cid}").get_data(as_text=True)
    card = html.split('data-role="arousal"', 1)[1].split('<div class="sub">', 1)[0]
    call = next(c for c in web_out["calls"].to_dict("records") if c["call_id"] == cid)
    mean, peak = dict(call["channel_arousal_mean"]), dict(call["channel_arousal_peak"])
    for ch in ("agent", "customer"):
        line = card.split(f'data-channel="{ch}" data-figure="arousal">', 1)[1].split("</div>", 1)[0]
        qs = [q["arousal"] for q in call["quarters"] if q["channel"] == ch]
        assert f"<b>{mean[ch]:.2f}</b>" in line and f"peak {peak[ch]:.2f}" in line
        raised = dict(call["channel_raised_share"])[ch]  # the share of raised voice, as a percentage
        assert f'data-figure="raised">{round(raised * 100)} %</span>' in line
        assert line.split("by quarter ", 1)[1].split("<", 1)[0] == " ".join(
            "-" if q is None or q != q else f"{q:.2f}" for q in qs)


def test_failed_call_page_says_why(client, web_out):
    html = client.get(f"/calls/{_id(web_out, 'corrupt.wav')}").get_data(as_text=True)
    assert "could not be analysed" in html and 'data-role="recording"' not in html


@pytest.mark.parametrize("path", ["/calls/..%2f..%2fetc%2fpasswd", "/calls/../../etc/passwd",
                                  "/calls/%2fetc%2fpasswd/audio", "/calls/0123456789abcdef",
                                  "/calls/0123456789abcdef/audio", "/calls/ETC_PASSWD/segments.csv",
                                  "/api/calls/..%2f..%2fetc%2fpasswd"])
def test_a_url_never_names_a_file(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert b"root:" not in r.data


def test_audio_of_a_pcm_file_is_the_file_with_ranges(client, web_out):
    cid = _id(web_out, "mono16k.wav")
    original = (web_out["a"] / "queue2" / "mono16k.wav").read_bytes()
    r = client.get(f"/calls/{cid}/audio")
    assert r.status_code == 200 and r.mimetype == "audio/wav" and r.data == original
    part = client.get(f"/calls/{cid}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == original[100:200]


def test_audio_of_mu_law_and_archive_members_is_playable(client, web_out):
    r = client.get(f"/calls/{_id(web_out, 'stereo_ulaw.wav')}/audio")
    assert r.status_code == 200 and r.mimetype == "audio/wav"
    got, sr = sf.read(io.BytesIO(r.data), dtype="float32")
    info = sf.info(io.BytesIO(r.data))
    ref, ref_sr = sf.read(web_out["a"] / "queue1" / "stereo_ulaw.wav", dtype="float32")
    assert info.subtype == "PCM_16" and sr == ref_sr and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2 / 32768)
    r = client.get(f"/calls/{_id(web_out, 'member.wav')}/audio")
    assert r.status_code == 200 and r.data == web_out["member_bytes"]  # the member as the archive holds it


def test_audio_of_a_vanished_recording_is_a_clear_404(tmp_path):
    from jobs.web.audio import AudioCache, AudioUnavailable
    from ser_lib.archive import ArchiveLimits
    cache = AudioCache(str(tmp_path), ArchiveLimits())
    with pytest.raises(AudioUnavailable, match="no longer at"):
        cache.playable({"call_id": "0" * 16, "source_path": str(tmp_path / "gone.wav"), "member": None,
                        "audio_format": "WAV/PCM_16"})


def test_audio_route_reads_only_under_the_runs_input_roots(web_out, tiny_artifact, conf, tmp_path):
    """An OUT whose calls rows were edited to point elsewhere (here: at a real WAV outside
    every run's IN) does not make the server read that file."""
    import pyarrow.parquet as pq

    from jobs.web import create_app
    out = tmp_path / "forged"
    shutil.copytree(web_out["out"], out)
    elsewhere = write_call(tmp_path / "private" / "secret.wav", 8000, [[("speech", 2)]], seed=11)
    cid = _id(web_out, "mono16k.wav")
    import pyarrow.compute as pc
    for f in (out / "calls").rglob("*.parquet"):
        t = pq.read_table(f)
        hit = pc.equal(t["call_id"], cid)
        if pc.any(hit).as_py():
            col = pc.if_else(hit, str(elsewhere), t["source_path"])
            pq.write_table(t.set_column(t.schema.get_field_index("source_path"), "source_path", col), f)
    app = create_app(str(out), str(tiny_artifact), str(conf), tmpdir=str(tmp_path / "t"))
    c = app.test_client()
    r = c.get(f"/calls/{cid}/audio")
    assert r.status_code == 404 and b"not under the input folders" in r.data
    assert c.get(f"/calls/{_id(web_out, 'stereo_ulaw.wav')}/audio").status_code == 200  # the others still play


def test_segments_csv(client, web_out):
    cid = _id(web_out, "stereo_ulaw.wav")
    r = client.get(f"/calls/{cid}/segments.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert f"{cid}-segments.csv" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    seg = web_out["segments"]
    assert len(rows) == (seg["call_id"] == cid).sum()
    assert {"channel", "start_s", "end_s", "emotion", "confidence", "p_angry", "run_id", "emotion_smoothed", "arousal",
            "valence", "level_db", "level_rel_db"} <= set(rows[0])
    speech = [r for r in rows if r["is_speech"] == "True"]
    assert all(r["level_rel_db"] == "" for r in rows if r["is_speech"] != "True")  # null off speech
    assert all(float(r["level_db"]) < 0 for r in speech)
    assert speech and all(abs(sum(float(r[f"p_{e}"]) for e in ("angry", "disgust", "fear", "happy", "neutral",
                                                                     "sad", "surprise")) - 1) < 1e-4 for r in speech)


# ---------------------------------------------------------------- runs
def test_runs_page_and_api(client, web_out):
    runs = client.get("/api/runs").get_json()["runs"]
    ra, rb = web_out["runs"]
    assert [r["run_id"] for r in runs] == [rb["run_id"], ra["run_id"]]  # newest first; no ghost
    first = runs[1]
    for k in ("files", "processed", "failed", "skipped", "audio_hours", "wall_s", "model_version"):
        assert first["summary"][k] == ra[k]
    assert first["n_errors"] == 1 and first["errors"][0]["source_path"].endswith("corrupt.wav")
    assert runs[0]["n_errors"] == 0 and runs[0]["errors"] == []
    html = client.get("/runs").get_data(as_text=True)
    assert ra["run_id"] in html and rb["run_id"] in html and "corrupt.wav" in html and "tiny-test-1" in html


# ---------------------------------------------------------------- upload
def test_upload_json_is_ser_predicts(client, tmp_path, tiny_artifact, conf):
    from ser_lib.one_recording import predict_file
    path = write_call(tmp_path / "u.wav", 8000, [[("speech", 3), ("silence", 2)], [("silence", 2), ("speech", 3)]],
                      subtype="ULAW", seed=7)
    r = client.post("/upload", data={"file": (open(path, "rb"), "u.wav")}, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.data
    expect = json.loads(json.dumps(predict_file(str(path), str(conf), str(tiny_artifact))))
    assert r.get_json() == expect


def test_upload_page_shows_the_timeline_of_a_file_checked_by_content(client, tmp_path):
    # FLAC bytes under a .wav name: the content decides
    path = write_call(tmp_path / "x.flac", 16000, [[("speech", 3), ("silence", 2)]], seed=8)
    r = client.post("/upload", data={"file": (open(path, "rb"), "renamed.wav")})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    data = json.loads(html.split('data-role="call-data">', 1)[1].split("</script>", 1)[0])
    assert data["channels"] == ["mono"] and data["segments"] and data["audio_url"] is None
    assert "nothing of it is kept" in html
    assert data["turns"] and all(t["channel"] == "mono" and t["end_s"] <= 5.0 for t in data["turns"])


@pytest.mark.parametrize("payload, name, status, words", [
    (b"this is plain text, not audio" * 50, "call.wav", 400, "checked by its content"),
    (b"", "empty.wav", 400, "empty"),
    (None, "calls.zip", 400, "archives"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk" * 20, "broken.wav", 400, "not a recording"),
])
def test_bad_uploads_get_a_clear_message(client, tmp_path, payload, name, status, words):
    if payload is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a.wav", b"x")
        payload = buf.getvalue()
    for accept in ("text/html", "application/json"):
        r = client.post("/upload", data={"file": (io.BytesIO(payload), name)}, headers={"Accept": accept})
        assert r.status_code == status
        text = r.get_json()["error"] if accept == "application/json" else r.get_data(as_text=True)
        assert words in text and "Traceback" not in text


def test_upload_without_a_file(client):
    r = client.post("/upload", data={}, headers={"Accept": "application/json"})
    assert r.status_code == 400 and "choose a recording" in r.get_json()["error"]


def test_upload_limits_size_and_concurrency(web_out, tiny_artifact, conf, tmp_path):
    from jobs.web import create_app
    small = create_app(str(web_out["out"]), str(tiny_artifact), str(conf), max_upload_bytes=100_000,
                       max_concurrent=1, tmpdir=str(tmp_path))
    c = small.test_client()
    r = c.post("/upload", data={"file": (io.BytesIO(b"\0" * 200_000), "big.wav")},
               headers={"Accept": "application/json"})
    assert r.status_code == 413 and "limit" in r.get_json()["error"]
    scorer = small.extensions["ser"]["scorer"]
    assert scorer._slots.acquire(blocking=False)  # one upload is being scored
    try:
        path = write_call(tmp_path / "s.wav", 8000, [[("speech", 2.5)]], seed=9)
        r = c.post("/upload", data={"file": (open(path, "rb"), "s.wav")}, headers={"Accept": "application/json"})
        assert r.status_code == 503 and r.headers["Retry-After"] and "try again" in r.get_json()["error"]
    finally:
        scorer._slots.release()


def test_nothing_is_written_outside_the_temp_dir(app, client, web_out, tmp_path):
    before = _files(web_out["out"])
    path = write_call(tmp_path / "k.wav", 8000, [[("speech", 2.5)]], seed=10)
    assert client.post("/upload", data={"file": (open(path, "rb"), "k.wav")}).status_code == 200
    for cid in web_out["calls"]["call_id"]:
        client.get(f"/calls/{cid}")
        client.get(f"/calls/{cid}/audio")
    assert _files(web_out["out"]) == before
    assert os.listdir(Path(app.extensions["ser"]["tmpdir"]) / "uploads") == []  # the upload is gone


def test_uploads_are_kept_only_when_configured(web_out, tiny_artifact, conf, tmp_path):
    from jobs.web import create_app
    keep = tmp_path / "kept"
    c = create_app(str(web_out["out"]), str(tiny_artifact), str(conf), keep_uploads=str(keep),
                   tmpdir=str(tmp_path / "t")).test_client()
    path = write_call(tmp_path / "q.wav", 8000, [[("speech", 2.5)]], seed=13)
    assert c.post("/upload", data={"file": (open(path, "rb"), "../../q.wav")}).status_code == 200
    kept = list(keep.iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("q.wav") and kept[0].read_bytes() == path.read_bytes()


def test_a_results_root_without_runs_yet(tmp_path, tiny_artifact, conf):
    from jobs.web import create_app
    (tmp_path / "out" / "_runs").mkdir(parents=True)
    c = create_app(str(tmp_path / "out"), str(tiny_artifact), str(conf), tmpdir=str(tmp_path / "t")).test_client()
    assert "No committed runs" in c.get("/").get_data(as_text=True)
    assert c.get("/api/calls").get_json()["total"] == 0 and c.get("/api/runs").get_json() == {"runs": []}
    assert c.get("/runs").status_code == 200 and c.get("/calls/0123456789abcdef").status_code == 404


def test_only_loopback_host_names_are_answered(client):
    assert client.get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    r = client.get("/", headers={"Host": "attacker.example"})  # DNS rebinding
    assert r.status_code == 400 and b"not trusted" in r.data


def test_no_third_party_script(client, web_out):
    html = client.get(f"/calls/{_id(web_out, 'stereo_ulaw.wav')}").get_data(as_text=True)
    assert "http://" not in html.split("<footer>")[0] and "https://" not in html
    r = client.get("/vendor/plotly.min.js")
    assert r.status_code == 200 and b"plotly.js" in r.data[:200]
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "MIT" in client.get("/vendor/plotly-LICENSE.txt").get_data(as_text=True)


def test_results_root_must_be_a_results_root(tmp_path):
    from jobs.web.results import NotResults, Results
    with pytest.raises(NotResults, match="not a results root"):
        Results(str(tmp_path))
    with pytest.raises(NotResults, match="not local"):
        Results("hdfs://namenode/ser")


# ---------------------------------------------------------------- ser serve + browser
@pytest.fixture(scope="module")
def served(web_out, tiny_artifact, conf):
    """``ser serve`` as a user starts it, on a free port."""
    from jobs.web.server import free_port
    port = free_port()
    # `python -m jobs.cli` is the `ser` entry point, run from this checkout
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "serve", str(web_out["out"]), "--port", str(port), "--model", str(tiny_artifact),
                                   "--conf", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/runs", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"ser serve did not start: {proc.stdout.read()}")
            time.sleep(0.3)
    yield base, proc
    proc.terminate()
    proc.wait(10)


def test_ser_serve_binds_to_loopback_and_says_so(served, web_out):
    base, proc = served
    body = json.loads(urllib.request.urlopen(base + "/api/calls").read())
    assert body["total"] == len(web_out["calls"])
    proc_line = proc.stdout.readline() + proc.stdout.readline()
    assert f"at {base}/" in proc_line and "Only this machine can connect" in proc_line


def test_readme_curl_examples_work(served, web_out, tmp_path, tiny_artifact, conf):
    """The curl lines of the README's "Browsing results", run as written against ``ser serve``."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    from ser_lib.one_recording import predict_file
    from tests.conftest import doc_section
    section = doc_section("## Browsing results")
    lines = [ln.split("  #", 1)[0].strip() for ln in section.splitlines() if ln.startswith("curl ")]
    assert len(lines) == 4, lines
    base, _ = served
    cid = _id(web_out, "stereo_ulaw.wav")
    wav = write_call(tmp_path / "call.wav", 8000, [[("speech", 3), ("silence", 1)]], seed=12)
    got = []
    for line in lines:
        cmd = line.replace("http://127.0.0.1:8050", base).replace("CALL_ID", cid) + " --fail --silent --show-error"
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (cmd, r.stderr)
        got.append(json.loads(r.stdout))
    calls = web_out["calls"]
    expect = {cid for cid, m in zip(calls["call_id"], calls["channel_dominant_emotion"])
              if m is not None and dict(m).get("customer") == "angry"}
    assert got[0]["total"] == len(expect) and {c["call_id"] for c in got[0]["calls"]} == expect
    assert got[1]["call_id"] == cid and len(got[1]["segments"]) == calls.set_index("call_id").loc[cid, "n_segments"]
    assert [r["run_id"] for r in got[2]["runs"]] == [r["run_id"] for r in reversed(web_out["runs"])]
    assert got[3] == json.loads(json.dumps(predict_file(str(wav), str(conf), str(tiny_artifact))))


def test_ser_serve_refuses_a_directory_that_is_no_results_root(tmp_path):
    from click.testing import CliRunner

    from jobs.cli import cli
    res = CliRunner().invoke(cli, ["serve", str(tmp_path)])
    assert res.exit_code == 1 and "not a results root" in res.output


def _chrome():
    pytest.importorskip("selenium", reason="the browser test needs selenium (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("the browser test needs headless Chromium: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
              "--mute-audio", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def _wait(d, script: str, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = d.execute_script(script)
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


LANES = """const p = document.querySelector('[data-role="recording"][data-ready] [data-role="timeline"]');
if (!p) return null;
const ticks = [...p.querySelectorAll('.ytick text')].map(t => t.textContent);
const bars = [...p.querySelectorAll('.barlayer .point path')].filter(b => b.getBBox().width > 0);
const lanes = {};
for (const b of bars) { const y = Math.round(b.getBBox().y); lanes[y] = (lanes[y] || 0) + 1; }
return {ticks: ticks, bars: bars.length, lanes: Object.keys(lanes).length};"""
MARKER = "return document.querySelector('[data-role=\"timeline\"]').layout.shapes[0].x0"


@pytest.mark.browser
def test_browser_calls_call_audio_runs_upload(served, web_out, tmp_path):
    base, _ = served
    d = _chrome()
    SHOTS.mkdir(exist_ok=True)
    try:
        d.get(base + "/")
        rows = d.find_elements("css selector", "table.calls tbody tr")
        assert len(rows) == len(web_out["calls"])
        d.save_screenshot(str(SHOTS / "web-calls.png"))

        d.find_element("link text", "queue1/stereo_ulaw.wav").click()
        lanes = _wait(d, "return (function(){" + LANES + "})()")
        # each channel's emotion lane, then its talk lane (the turns table's spurts)
        assert sorted(lanes["ticks"]) == ["agent", "agent talk", "customer", "customer talk"] and lanes["lanes"] == 4 \
            and lanes["bars"] >= 6
        assert _wait(d, "return document.querySelector('audio').readyState >= 1")
        d.execute_script("document.querySelector('audio').play()")
        _wait(d, "return document.querySelector('audio').currentTime > 1.0", 30)
        t_marker, t_audio = d.execute_script(MARKER), d.execute_script("return document.querySelector('audio').currentTime")
        assert t_marker > 0.5 and abs(t_marker - t_audio) < 0.6  # the marker follows the player
        d.save_screenshot(str(SHOTS / "web-call.png"))
        # and the other way: a click at 3/4 of the plot width seeks the player there
        area = d.find_element("css selector", "[data-role='timeline'] .nsewdrag")
        from selenium.webdriver.common.action_chains import ActionChains
        w = area.size["width"]
        ActionChains(d).move_to_element_with_offset(area, int(w * 0.25), 0).click().perform()
        lo, hi = d.execute_script("return document.querySelector('[data-role=\"timeline\"]').layout.xaxis.range")
        target = lo + 0.75 * (hi - lo)
        _wait(d, f"return Math.abs(document.querySelector('audio').currentTime - {target}) < 1.0")
        assert abs(d.execute_script(MARKER) - target) < 1.0

        d.get(base + "/runs")
        # waited for: on a loaded machine page_source can be read before the page is there
        run_id = web_out["runs"][0]["run_id"]
        assert _wait(d, f"return document.body !== null && document.body.innerHTML.includes('{run_id}')"), run_id
        d.save_screenshot(str(SHOTS / "web-runs.png"))

        path = write_call(tmp_path / "upload.wav", 8000, [[("speech", 4), ("silence", 2)],
                                                          [("silence", 2), ("speech", 4)]], subtype="ULAW", seed=11)
        d.get(base + "/upload")
        d.find_element("css selector", "input[type=file]").send_keys(str(path))
        d.find_element("css selector", "form.upload button").click()
        lanes = _wait(d, "return (function(){" + LANES + "})()", 60)
        assert sorted(lanes["ticks"]) == ["agent", "agent talk", "customer", "customer talk"] and lanes["lanes"] == 4
        assert d.execute_script("return document.querySelector('[data-role=\"result\"] audio').src").startswith("blob:")
        d.save_screenshot(str(SHOTS / "web-upload.png"))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        d.quit()


@pytest.mark.browser
def test_browser_call_page_with_episodes(served, web_out):
    """The call page with episodes in Chromium: one outline per episode on the timeline, the
    episode list, an m:ss time axis (also after a zoom), and Plotly's toolbar above the lanes."""
    base, _ = served
    cid = _with_most_episodes(web_out)
    n_eps = int((read_table(str(web_out["out"]), "episodes")["call_id"] == cid).sum())
    d = _chrome()
    SHOTS.mkdir(exist_ok=True)
    try:
        d.set_window_size(1400, 1300)
        d.get(f"{base}/calls/{cid}")
        _wait(d, "return document.querySelector('[data-role=\"recording\"][data-ready]')")
        plot = "document.querySelector('[data-role=\"timeline\"]')"
        assert d.execute_script(f"return {plot}.dataset.episodes") == str(n_eps)
        assert d.execute_script(f"return {plot}.layout.shapes.filter(s => s.type === 'rect').length") == n_eps
        assert len(d.find_elements("css selector", "[data-role='episodes'] tbody tr")) == n_eps
        ticks = d.execute_script(f"return [...{plot}.querySelectorAll('.xtick text')].map(t => t.textContent)")
        assert ticks and all(re.fullmatch(r"\d+:\d\d", t) for t in ticks), ticks
        # the toolbar sits in the top margin, above the plot area (it used to cover the agent lane)
        d.execute_script(f"{plot}.dispatchEvent(new MouseEvent('mousemove', {{bubbles: true}}))")
        bar, area = d.execute_script(
            f"const m = {plot}.querySelector('.modebar'), a = {plot}.querySelector('.nsewdrag');"
            "return [m.getBoundingClientRect().bottom, a.getBoundingClientRect().top];")
        assert bar <= area + 1, (bar, area)
        d.save_screenshot(str(SHOTS / "web-call-episodes.png"))
        # zoom into the first half: ticks stay m:ss
        d.execute_script(f"Plotly.relayout({plot}, {{'xaxis.range': [0, {plot}.layout.xaxis.range[1] / 2]}})")
        time.sleep(0.5)
        ticks = d.execute_script(f"return [...{plot}.querySelectorAll('.xtick text')].map(t => t.textContent)")
        assert ticks and all(re.fullmatch(r"\d+:\d\d", t) for t in ticks), ticks
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        d.quit()
