"""Accuracy of the talk spurts and conversation measures on synthetic calls with placed turns.

``python -m bench.talk [--calls N] [--corpora DIR] [--out FILE]`` builds two-channel 8 kHz
calls (:func:`ser_lib.synth.conversation_plan`, :func:`ser_lib.synth.placed_call`): 12 turns
of alternating speakers, gaps of 1-30 s (log-uniform), overlaps of 0.3-3 s, the customer
channel 20 dB quieter than the agent (-20 / -40 dBFS RMS over a turn). Conditions:

* ``synth_clean`` / ``synth_noise``: speech-like turns (:func:`ser_lib.synth.speech_like`),
  without line noise / with white line noise at -50 dBFS under both channels;
* ``corpus_clean`` / ``corpus_noise``: the same with turns of RAVDESS clips (one actor per
  channel, clips trimmed and laid end to end; ``$SER_CORPORA`` or ``../shared/corpora``;
  skipped when absent);
* ``synth_pink`` / ``corpus_pink``: pink noise (:func:`ser_lib.synth.pink_noise`) at -50 dBFS
  instead of white: colored line noise, whose level swings more.

Each call goes through the job's own path (16-bit WAV → :func:`ser_lib.scoring.score_recording`
with the shipped model → :func:`ser_lib.scoring.summarize`) and its ``turns``,
``channel_talk_s`` and ``channel_interruptions`` are compared with the placed truth:

* talk time per channel: relative error (target ≤ 5 %);
* non-talk and overlap, per event (:func:`ser_lib.synth.event_errors`: each placed gap or
  overlap against the detected one it shares most time with; made-up events count their
  length): share of events within 0.3 s (target: all);
* interruptions per channel: share of calls counted exactly (target: all on clean calls,
  ≥ 90 % with noise). Clean calls place no overlap within 1.6-2.6 s, so that no true
  overlap lies within the detector's resolution of the 2 s rule.

The same is measured with ``webrtcvad`` (the WebRTC detector, 10 ms frames, aggressiveness
0-3) in place of the job's frame decisions, through the same spurt rules
(:func:`ser_lib.talk.talk_spurts`), when it is installed: the alternative the issue asks to
compare. Results: ``bench/results/talk-<date>.json`` and a table on stdout.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_lib.config import JobConfig
from ser_lib.one_recording import load_predictor
from ser_lib.scoring import score_recording, summarize
from ser_lib.synth import conversation_plan, event_errors, pink_noise, placed_call
from ser_lib.talk import FRAME_S, conversation_measures, talk_events, talk_spurts

SR = 8000
SEED = 20261207


def truth_spurts(truth) -> dict[str, np.ndarray]:
    """Placed turns as spurts per channel name (agent = channel 0, customer = 1); touching
    or overlapping turns of one channel are one spurt."""
    out = {}
    for c, name in enumerate(("agent", "customer")):
        rows = sorted((s, e) for ch, s, e in truth if ch == c)
        merged: list[list[float]] = []
        for s, e in rows:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out[name] = np.asarray(merged, dtype=float).reshape(-1, 2)
    return out


def compare(truth: dict, found: dict, cfg) -> dict:
    """Errors of ``found`` spurts against ``truth`` spurts (both channel → (n, 2) s)."""
    mt, mf = conversation_measures(truth, 0.0, cfg), conversation_measures(found, 0.0, cfg)
    (gt, ot), (gf, of) = talk_events(truth), talk_events(found)
    return {"talk_rel_err": {c: abs(mf["channel_talk_s"][c] - mt["channel_talk_s"][c]) / mt["channel_talk_s"][c]
                             for c in truth if mt["channel_talk_s"][c] > 0},
            "non_talk_err": event_errors(gt, gf).tolist(), "overlap_err": event_errors(ot, of).tolist(),
            "interruptions_true": mt["channel_interruptions"], "interruptions_found": mf["channel_interruptions"]}


def webrtc_spurts(audio: np.ndarray, mode: int, cfg) -> dict:
    """Spurts from webrtcvad's 10 ms decisions (16-bit PCM at 8 kHz) through the job's spurt rules."""
    import webrtcvad
    vad = webrtcvad.Vad(mode)
    out = {}
    n = SR // 100
    for c, name in enumerate(("agent", "customer")):
        pcm = (np.clip(audio[:, c], -1, 1) * 32767).astype("<i2")
        k = len(pcm) // n
        frames = np.array([vad.is_speech(pcm[i * n:(i + 1) * n].tobytes(), SR) for i in range(k)])
        out[name] = talk_spurts(frames, cfg, FRAME_S, 0.0)
    return out


def ravdess_actors(root: Path) -> list[list[np.ndarray]] | None:
    import soxr
    d = root / "ravdess"
    if not d.is_dir():
        return None
    actors = []
    for a in sorted(d.glob("Actor_*"))[:6]:
        clips = []
        for f in sorted(a.glob("*.flac"))[:20]:
            y, sr = sf.read(f, dtype="float32")
            clips.append(soxr.resample(y, sr, SR))
        actors.append(clips)
    return actors


def summarise(rows: list[dict]) -> dict:
    talk = [v for r in rows for v in r["talk_rel_err"].values()]
    nt = [v for r in rows for v in r["non_talk_err"]]
    ov = [v for r in rows for v in r["overlap_err"]]
    exact = [r["interruptions_true"] == r["interruptions_found"] for r in rows]
    return {"calls": len(rows), "talk_rel_err_max": max(talk), "talk_rel_err_mean": float(np.mean(talk)),
            "talk_within_5pct": float(np.mean(np.asarray(talk) <= 0.05)),
            "non_talk_events": len(nt), "non_talk_within_0.3s": float(np.mean(np.asarray(nt) <= 0.3)),
            "non_talk_err_max_s": max(nt), "overlap_events": len(ov),
            "overlap_within_0.3s": float(np.mean(np.asarray(ov) <= 0.3)) if ov else None,
            "overlap_err_max_s": max(ov) if ov else None,
            "interruptions_exact_calls": float(np.mean(exact))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=10, help="calls per condition (default 10)")
    p.add_argument("--corpora", default=os.environ.get("SER_CORPORA", str(Path(__file__).resolve().parents[2]
                                                                              / "shared" / "corpora")))
    p.add_argument("--out", default=None)
    p.add_argument("--seed", type=int, default=SEED, help=f"seed of the calls (default {SEED}; another seed: held-out calls)")
    p.add_argument("--talk", action="append", default=[], metavar="KEY=VALUE",
                   help="a talk setting other than conf/job.yaml's (e.g. margin_db=8)")
    a = p.parse_args(argv)
    cfg = JobConfig.load(None, {"talk": {k: float(v) for k, v in (kv.split("=", 1) for kv in a.talk)}})
    predictor = load_predictor(cfg)
    labels = list(predictor.labels)
    actors = ravdess_actors(Path(a.corpora))
    conditions = {"synth_clean": (None, False), "synth_noise": (-50.0, False), "synth_pink": ("pink", False)}
    if actors:
        conditions.update({"corpus_clean": (None, True), "corpus_noise": (-50.0, True), "corpus_pink": ("pink", True)})
    results: dict = {"date": dt.date.today().isoformat(), "talk_config": cfg.talk.to_dict(), "seed": a.seed,
                     "calls_per_condition": a.calls, "conditions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (noise_db, corpus) in conditions.items():
            rng = np.random.default_rng(a.seed)
            detectors: dict[str, list] = {"job": []}
            for i in range(a.calls):
                plan = conversation_plan(rng, avoid_s=(1.6, 2.6))
                clips = None
                if corpus:
                    pick = rng.choice(len(actors), 2, replace=False)
                    clips = [actors[pick[0]], actors[pick[1]]]
                audio, truth = _build(plan, rng, noise_db, clips)
                path = Path(tmp) / f"{name}-{i}.wav"
                sf.write(path, audio, SR, subtype="PCM_16")
                rec = score_recording(str(path), predictor, predictor.meta.feature_config, cfg.hop_s, cfg.speech,
                                      cfg.channel_names, cfg.chunk_s, smoothing=cfg.timeline, talk=cfg.talk)
                s = summarize(rec, labels, cfg.episodes, cfg.talk)
                found = {c: np.asarray([(t["start_s"], t["end_s"]) for t in s["turns"] if t["channel"] == c],
                                       dtype=float).reshape(-1, 2) for c in ("agent", "customer")}
                ts = truth_spurts(truth)
                detectors["job"].append(compare(ts, found, cfg.talk))
                try:
                    pcm = sf.read(path, dtype="float32")[0]
                    for mode in range(4):
                        detectors.setdefault(f"webrtcvad_{mode}", []).append(
                            compare(ts, webrtc_spurts(pcm, mode, cfg.talk), cfg.talk))
                except ImportError:
                    pass
            results["conditions"][name] = {d: summarise(rows) for d, rows in detectors.items()}
            for d, sm in results["conditions"][name].items():
                print(f"{name:13s} {d:11s} talk max {sm['talk_rel_err_max']:.3f} (≤5%: {sm['talk_within_5pct']:.2f})  "
                      f"non-talk ≤0.3 s {sm['non_talk_within_0.3s']:.2f} (max {sm['non_talk_err_max_s']:.2f} s)  "
                      f"overlap ≤0.3 s {sm['overlap_within_0.3s']:.2f} (max {sm['overlap_err_max_s']:.2f} s)  "
                      f"interruptions exact {sm['interruptions_exact_calls']:.2f}", flush=True)
    out = Path(a.out or Path(__file__).resolve().parent / "results" / f"talk-{results['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


def _build(plan, rng, noise_db, clips):
    """One call: per-channel clip lists when ``clips`` (a list per channel), else speech-like turns;
    ``noise_db`` -50.0: white line noise at -50 dBFS, ``"pink"``: pink noise at -50 dBFS."""
    if noise_db == "pink":
        audio, truth = _build(plan, rng, None, clips)
        for c in range(audio.shape[1]):
            audio[:, c] += pink_noise(len(audio), rng, -50.0)
        return audio, truth
    if clips is None:
        return placed_call(plan, SR, rng, noise_db=noise_db)
    # placed_call takes one clip list: build each channel's turns from its own actor
    a0, t0 = placed_call([t for t in plan if t[0] == 0], SR, rng, noise_db=None, clips=clips[0],
                         tail_s=1.0 + max(e for _, _, e in plan) - max(e for c, _, e in plan if c == 0))
    a1, t1 = placed_call([t for t in plan if t[0] == 1], SR, rng, noise_db=None, clips=clips[1],
                         tail_s=1.0 + max(e for _, _, e in plan) - max(e for c, _, e in plan if c == 1))
    n = min(len(a0), len(a1))
    audio = np.stack([a0[:n, 0], a1[:n, 1]], axis=1)
    if noise_db is not None:
        audio += (rng.standard_normal(audio.shape) * 10 ** (noise_db / 20)).astype(np.float32)
    return audio, sorted(t0 + t1, key=lambda t: t[1])


if __name__ == "__main__":
    raise SystemExit(main())
