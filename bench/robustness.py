"""Robustness of the scoring path to the recording level, and speech-detector coverage.

``python -m bench.robustness [--corpora DIR] [--model DIR] [--out FILE]`` measures, on the
real corpora (``$SER_CORPORA`` or ``../shared/corpora``):

1. **Coverage**: the share of clips of each corpus that get at least one speech window
   (:func:`ser_lib.speech.is_speech` on the job's windows, hop 1 s), at the clip's own
   level and scaled by -20 dB and -30 dB.
2. **Gain invariance**: call-like mono recordings (3 minutes: episodes of 2-4 clips of one
   emotion by one RAVDESS actor, separated by 0.4-1.5 s pauses of -70 dBFS line noise,
   peak-normalised to -21 dBFS so that +20 dB does not clip) written as WAV at gains -30,
   -20, -10, +10, +20 dB and scored through the job's own path
   (:func:`ser_lib.scoring.score_recording`); the share of windows whose speech flag or
   emotion differs from the 0 dB recording, over all windows and over the windows whose
   own peak after the gain is at least -60 dBFS (the detector's specified range), and the
   share whose *smoothed* emotion (``emotion_smoothed``: what the timeline, shares and
   episodes are built from, :mod:`ser_lib.smoothing`) differs. Twice:
   as 24-bit WAV (the gain alone: the quantisation noise stays 140 dB down) and as 16-bit WAV (the gain plus the file's fixed
   quantisation noise at -101 dBFS, which at -30 dB lies about 20 dB under the speech of
   these calls: a noise condition as much as a level one). A third time, 16-bit, with the
   gains applied to the 0 dB 16-bit file's own samples (``PCM_16_rescaled``: a recording
   turned up or down, rather than one made at another level). Each call is built from the test actors of one
   cross-validation fold and scored with that fold's model (``<model>/cv/fold-<i>``), so
   the speakers are ones the model never heard.

Results go to ``bench/results/robustness-<date>.json`` and are printed as a table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

GAINS_DB = (-30, -20, -10, 10, 20)
#: gain conditions: name -> (WAV subtype, rescale: the gains applied to the 0 dB file's own samples)
CONDITIONS = {"PCM_24": ("PCM_24", False), "PCM_16": ("PCM_16", False), "PCM_16_rescaled": ("PCM_16", True)}
#: seed of the calls' draws (actors, clips, pauses): every run scores the same calls
CALL_SEED = 20261202
#: the quietest speech peak the detector is specified for (issue #12: -60 to -6 dBFS peak)
MIN_PEAK_DBFS = -60.0


def coverage(clips, fcfg, scfg, gains=(0, -20, -30)) -> dict:
    """``{corpus: {gain: share of clips with >= 1 speech window}}`` (plus clip counts)."""
    from ser_lib.features import window_features
    from ser_lib.speech import is_speech
    from training.dataset import clip_samples

    out: dict = {}
    for c in clips:
        y = clip_samples(c.path, fcfg.sample_rate)
        d = out.setdefault(c.corpus, {"clips": 0, **{str(g): 0 for g in gains}})
        d["clips"] += 1
        for g in gains:
            feats, _ = window_features((y * 10 ** (g / 20)).astype(np.float32), fcfg, 1.0)
            d[str(g)] += int(is_speech(feats, scfg).any())
    return {corpus: {"clips": d["clips"], **{g: d[str(g)] / d["clips"] for g in map(str, gains)}}
            for corpus, d in out.items()}


def build_call(clips, rng: random.Random, sr: int = 16000, minutes: float = 3.0) -> np.ndarray:
    """A mono call-like recording from ``clips`` (one speaker's), peak -21 dBFS."""
    import librosa

    from ser_lib.synth import silence
    from training.dataset import clip_samples

    nrng = np.random.default_rng(rng.randrange(1 << 30))
    by_emotion: dict[str, list] = {}
    for c in clips:
        by_emotion.setdefault(c.emotion, []).append(c)
    parts, total = [], 0.0
    while total < minutes * 60:
        emo = rng.choice(sorted(by_emotion))
        for c in rng.sample(by_emotion[emo], min(len(by_emotion[emo]), rng.randint(2, 4))):
            y, _ = librosa.effects.trim(clip_samples(c.path, sr), top_db=35, frame_length=512, hop_length=128)
            pause = silence(rng.uniform(0.4, 1.5), sr, nrng)
            parts += [y, pause]
            total += (len(y) + len(pause)) / sr
    y = np.concatenate(parts)
    return (y / np.abs(y).max() * 10 ** (-21 / 20)).astype(np.float32)


def gain_invariance(calls: list[tuple[np.ndarray, object]], cfg, tmp: Path, gains=GAINS_DB,
                    subtype: str = "PCM_24", min_peak_dbfs: float = MIN_PEAK_DBFS, rescale: bool = False) -> dict:
    """Share of windows whose speech flag or emotion changes with the gain, per gain, the
    recordings written as WAV of ``subtype`` (soundfile's name). ``emotion_changed`` counts
    the raw per-window label (``segments.emotion``), ``smoothed_emotion_changed`` the
    smoothed one (``segments.emotion_smoothed``), both over windows that are speech at both
    gains, as shares of all windows.

    With ``rescale``, each call is first written at 0 dB as a WAV of ``subtype`` and every
    gain is applied to *that file's* samples (a user turning a recording up or down: its own
    quantisation noise is scaled with it); without, each gain's copy is quantised from the
    float call (a recording made at that level).

    Besides all windows, the same shares over the windows whose own peak after the gain is
    at least ``min_peak_dbfs`` (``in_range``): the speech levels the detector is specified
    for (-60 to -6 dBFS peak). A call peak-normalised to -21 dBFS holds quiet utterances
    40-50 dB under its peak; at -30 dB their windows peak under -80 dBFS, within 20 dB of
    a 16-bit file's quantisation noise."""
    from ser_lib.scoring import score_recording

    # per gain: [flag changes, emotion changes, windows, smoothed-emotion changes] over all
    # windows and over in_range ones
    changed = {g: np.zeros((2, 4), dtype=np.int64) for g in gains}
    for k, (y, pred) in enumerate(calls):
        if rescale:
            src = tmp / f"call{k}_source.wav"
            sf.write(src, np.clip(y, -1, 1), 16000, subtype=subtype)
            y = sf.read(src, dtype="float64")[0]

        def score(gain):
            path = tmp / f"call{k}_{gain}.wav"
            sf.write(path, np.clip(y * 10 ** (gain / 20), -1, 1), 16000, subtype=subtype)
            ch = score_recording(str(path), pred, pred.meta.feature_config, cfg.hop_s, cfg.speech,
                                 cfg.channel_names, cfg.chunk_s, None, cfg.timeline).channels[0]
            return ch.speech, ch.emotion, ch.start_s, ch.end_s, ch.emotion_smoothed
        s0, e0, start, end, m0 = score(0)
        peak_db = np.array([20 * np.log10(np.abs(y[int(a * 16000):max(int(b * 16000), int(a * 16000) + 1)]).max()
                                          + 1e-12) for a, b in zip(start, end)])
        for g in gains:
            s, e, _, _, m = score(g)
            for row, keep in enumerate((np.ones(len(s0), bool), peak_db + g >= min_peak_dbfs)):
                changed[g][row] += [int((s != s0)[keep].sum()), int(((e != e0) & s & s0)[keep].sum()), int(keep.sum()),
                                    int(((m != m0) & s & s0)[keep].sum())]

    def shares(f, e, n, m):
        n = max(n, 1)
        return {"flag_changed": f / n, "emotion_changed": e / n, "either_changed": (f + e) / n,
                "smoothed_emotion_changed": m / n}
    return {str(g): {"windows": int(c[0, 2]), **shares(*c[0]),
                     "in_range": {"min_peak_dbfs": min_peak_dbfs, "windows": int(c[1, 2]), **shares(*c[1])}}
            for g, c in changed.items()}


def fold_calls(clips, model: str | Path, fcfg, calls_per_fold: int = 1) -> list[tuple[np.ndarray, object]]:
    """The benchmark's calls: per cross-validation fold, ``calls_per_fold`` calls
    (:func:`build_call`) of as many of its RAVDESS test actors, each paired with that fold's
    model (``<model>/cv/fold-<i>``, a :class:`ser_lib.runtime.Predictor`). Drawn with
    :data:`CALL_SEED`: the same calls every run.

    Raises:
        ser_lib.errors.ArtifactError (or FileNotFoundError): a fold artifact is missing or
            unreadable, as :meth:`ser_lib.runtime.Predictor.from_path` raises.
    """
    from ser_lib.runtime import Predictor
    from training.cv import FOLDS_PATH, assign, load_folds

    folds = load_folds(FOLDS_PATH)
    rng = random.Random(CALL_SEED)
    calls = []
    for i in range(len(folds["ravdess"]["test"])):
        pred = Predictor.from_path(Path(model) / "cv" / f"fold-{i}", expected=fcfg)
        test = [c for c in clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
        for actor in rng.sample(sorted({c.speaker for c in test}), calls_per_fold):
            calls.append((build_call([c for c in test if c.speaker == actor], rng), pred))
    return calls


def frame_levels(calls: list[np.ndarray], fcfg, pcts=(50, 90)) -> dict:
    """Percentiles of the calls' frame RMS (the features' ``rms_db``, dBFS) at 0 dB, pooled:
    where their speech sits against a 16-bit file's quantisation noise (-101 dBFS) once scaled."""
    from ser_lib.features import frame_features

    levels = np.concatenate([frame_features(y, fcfg)[:, 1] for y in calls])
    return {f"p{p}": round(float(np.percentile(levels, p)), 1) for p in pcts}


def main(argv=None) -> int:
    from ser_lib.config import JobConfig
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    from training.corpora import default_corpora_root, discover

    ap = argparse.ArgumentParser(prog="python -m bench.robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default=str(default_corpora_root()))
    ap.add_argument("--model", default="models/ser-cnn", help="artifact folder holding cv/fold-<i> (default %(default)s)")
    ap.add_argument("--calls-per-fold", type=int, default=1)
    ap.add_argument("--out", default=f"bench/results/robustness-{dt.date.today():%Y-%m-%d}.json")
    ap.add_argument("--only", choices=["coverage", "gain"], default=None,
                    help="measure one part; the other is kept from an existing --out file")
    args = ap.parse_args(argv)

    t0 = time.time()
    clips = discover([args.corpora]).clips
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    def merged(part: dict) -> dict:
        """``part`` over what --out holds now (re-read at write time: the two parts may run at once)."""
        old = json.loads(Path(args.out).read_text()) if args.only and Path(args.out).is_file() else {}
        return {**old, **part, "date": f"{dt.date.today():%Y-%m-%d}"}

    cov = None
    if args.only != "gain":
        cov = coverage([c for c in clips if c.corpus in ("ravdess", "tess", "turev")], fcfg, scfg)
    if args.only == "coverage":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(merged({"coverage_share_of_clips_with_a_speech_window": cov}),
                                             indent=1) + "\n")
        print(json.dumps(cov, indent=1))
        return 0
    cfg = JobConfig.load(None)
    calls = fold_calls(clips, args.model, fcfg, args.calls_per_fold)
    with tempfile.TemporaryDirectory() as tmp:
        per_format = {name: gain_invariance(calls, cfg, Path(tmp), subtype=st, rescale=rescale)
                      for name, (st, rescale) in CONDITIONS.items()}
    part = {"command": "python -m bench.robustness", "gain_invariance": {"calls": len(calls), "minutes_each": 3.0,
                                                                        "frame_rms_dbfs": frame_levels(
                                                                            [y for y, _ in calls], fcfg),
                                                                        "per_format": per_format},
            "wall_s": round(time.time() - t0, 1)}
    if cov is not None:
        part["coverage_share_of_clips_with_a_speech_window"] = cov
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(merged(part), indent=1) + "\n")
    print("clips with a speech window (share):")
    for corpus, d in (cov or {}).items():
        print(f"  {corpus:8s} n={d['clips']:5d}  0 dB {d['0']:.4f}  -20 dB {d['-20']:.4f}  -30 dB {d['-30']:.4f}")
    lv = part["gain_invariance"]["frame_rms_dbfs"]
    print(f"windows changed vs 0 dB ({len(calls)} calls of 3 min, fold models on their test actors; "
          f"frame RMS at 0 dB: median {lv['p50']} dBFS, 90th percentile {lv['p90']} dBFS):")
    for st, per_gain in per_format.items():
        for g, d in per_gain.items():
            r = d["in_range"]
            print(f"  {st} {int(g):+3d} dB: flag {d['flag_changed']:.4f}  emotion {d['emotion_changed']:.4f}  "
                  f"either {d['either_changed']:.4f}  smoothed emotion {d['smoothed_emotion_changed']:.4f}  "
                  f"(n={d['windows']}); windows peaking >= "
                  f"{r['min_peak_dbfs']:g} dBFS: either {r['either_changed']:.4f} (n={r['windows']})")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
