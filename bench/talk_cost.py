"""What the conversation measures cost in the job's per-recording path (issue 32: ≤ 5 % throughput).

``python -m bench.talk_cost [--minutes M] [--repeat R] [--out FILE]`` scores a synthetic stereo
8 kHz call of ``M`` minutes (:func:`ser_lib.synth.placed_call`) through
:func:`ser_lib.scoring.score_recording` + :func:`ser_lib.scoring.summarize` with the shipped
model, and times, on the same audio, each piece the measures added:

* ``loudness_s``: :class:`ser_lib.talk.LoudnessMeter` over both channels: what it adds to
  the features' own STFT frames (one power-spectrum x weights product per block of 512
  frames, timed on its own) plus the 100 ms steps and gates;
* ``loudness_filter_s`` (for comparison, not added): BS.1770's K-weighting run as a filter
  (``pyloudnorm``'s two stages as one ``scipy.signal.sosfilt`` cascade, chunk by chunk),
  the meter's previous implementation;
* ``talk_margin_s``: :func:`ser_lib.speech.speech_decisions` with the talk margin, then
  :func:`ser_lib.speech.talk_windows` (the windows the speech rule missed that may hold
  talk), minus ``speech_decisions`` alone, over every window of both channels;
* ``spurts_s``: :func:`ser_lib.talk.channel_talk_frames` from the frame levels and those windows, then
  :func:`ser_lib.scoring.conversation_fields` (spurts, measures, quarters, turns).

Times are CPU seconds of this process (``time.process_time``, the median of ``R`` repeats), so
other processes on a shared machine disturb them less than wall time; the loss is
``added / (total - added)``, the throughput a path without the measures would have over the
one with them. Results: ``bench/results/talk-cost-<date>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_lib.config import JobConfig
from ser_lib.features import frame_features, window_features
from ser_lib.one_recording import load_predictor
from ser_lib.scoring import conversation_fields, score_recording, summarize
from ser_lib.speech import RMS_DB_COLUMN, speech_decisions, talk_windows
from ser_lib.synth import conversation_plan, placed_call
from ser_lib.talk import LoudnessMeter, channel_talk_frames

SR = 8000


def cpu(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    cfg = JobConfig.load(None)
    predictor = load_predictor(cfg)
    labels = list(predictor.labels)
    fc = predictor.meta.feature_config
    rng = np.random.default_rng(5)
    plan, t = [], 1.0
    while t < a.minutes * 60 - 40:
        more = conversation_plan(rng, n_turns=12, lead_s=t)
        plan += more
        t = max(e for _, _, e in more) + 5.0
    audio, _ = placed_call(plan, SR, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "call.wav")
        sf.write(path, audio, SR, subtype="PCM_16")
        audio = sf.read(path, dtype="float32")[0]
        state = {}

        def full():
            rec = score_recording(path, predictor, fc, cfg.hop_s, cfg.speech, cfg.channel_names, cfg.chunk_s,
                                  smoothing=cfg.timeline, talk=cfg.talk)
            state["rec"] = rec
            summarize(rec, labels, cfg.episodes, cfg.talk)

        total = cpu(full, a.repeat)

        pieces = [np.array_split(np.ascontiguousarray(audio[:, c]), max(1, len(audio) // (SR * 60)))
                  for c in range(2)]
        weights = LoudnessMeter(fc).weights
        energies = [[frame_features(p, fc, power_weights=weights)[1] for p in chunks] for chunks in pieces]
        sub = 512  # the frames per sub-block of ser_lib.features._frames_block: one product each
        power = np.abs(np.fft.rfft(np.random.default_rng(0).standard_normal((sub, fc.n_fft)), axis=-1)) ** 2

        def loudness():
            # what the meter adds to the features' frames: one (sub, n_fft/2+1) @ weights product
            # per sub-block of frames, the 100 ms steps and the gates. Timed on its own: the
            # difference of two runs of the whole frame computation (~1.7 CPU s) drowns in the
            # shared machine's noise.
            for chunks, es in zip(pieces, energies):
                m, first = LoudnessMeter(fc), 0
                for piece, e in zip(chunks, es):
                    for _ in range(-(-len(e) // sub)):
                        power @ weights
                    m.add_frames(first, e)
                    first += len(e)
                m.lufs()

        def loudness_filter():
            import pyloudnorm
            from scipy.signal import sosfilt
            for chunks in pieces:
                sos = np.vstack([np.concatenate([f.passband_gain * np.asarray(f.b, float), np.asarray(f.a, float)])
                                 for f in pyloudnorm.Meter(SR)._filters.values()])
                zi, steps = np.zeros((len(sos), 2)), []
                for piece in chunks:
                    x, zi = sosfilt(sos, np.asarray(piece, np.float64), zi=zi)
                    m = len(x) // (SR // 10)
                    steps.append((x[:m * (SR // 10)] ** 2).reshape(m, -1).sum(axis=1))

        wins = [window_features(audio[:, c], fc, cfg.hop_s) for c in range(2)]
        def with_talk():
            for f, _ in wins:
                sp, act = speech_decisions(f, cfg.speech, cfg.talk.margin_db)
                talk_windows(f, sp, act, cfg.speech)

        with_margin = cpu(with_talk, a.repeat)
        without = cpu(lambda: [speech_decisions(f, cfg.speech) for f, _ in wins], a.repeat)
        decisions = []
        for f, _ in wins:
            sp, act = speech_decisions(f, cfg.speech, cfg.talk.margin_db)
            decisions.append((sp, talk_windows(f, sp, act, cfg.speech)))
        levels = [frame_features(np.ascontiguousarray(audio[:, c]), fc)[:, RMS_DB_COLUMN] for c in range(2)]
        n_frames = int(np.ceil(len(audio) / fc.hop_length))

        def spurts():
            for (_, starts), (sp, tw), lv in zip(wins, decisions, levels):
                st = starts // fc.hop_length
                channel_talk_frames(lv, st[tw], fc.frames_per_window, n_frames, cfg.talk,
                                    cfg.speech.floor_db, st[sp])
            conversation_fields(state["rec"], [dict(q) for q in summarize(state["rec"], labels)["quarters"]], cfg.talk)

        # summarize() inside spurts() is timed too: subtract a bare summarize
        bare_summary = cpu(lambda: summarize(state["rec"], labels), a.repeat)
        parts = {"loudness_s": cpu(loudness, a.repeat),
                 "talk_margin_s": max(0.0, with_margin - without),
                 "spurts_s": max(0.0, cpu(spurts, a.repeat) - bare_summary)}
        filter_s = cpu(loudness_filter, a.repeat)
    added = sum(parts.values())
    res = {"date": dt.date.today().isoformat(), "audio_s": len(audio) / SR, "channels": 2, "repeat": a.repeat,
           "load_average": os.getloadavg(), "total_cpu_s": total, **parts, "added_cpu_s": added,
           "throughput_loss": added / max(total - added, 1e-9),
           "loudness_filter_s": filter_s,
           "throughput_loss_with_filter": (added - parts["loudness_s"] + filter_s)
           / max(total - added, 1e-9)}
    print(json.dumps(res, indent=2))
    out = Path(a.out or Path(__file__).resolve().parent / "results" / f"talk-cost-{res['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
