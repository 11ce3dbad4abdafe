"""Call-like recordings with known emotions, and scoring of the job's timelines against them.

``build_calls`` concatenates the clips of the single split's **test** speakers (see
``training/split.json``) into calls: emotional episodes of 2-4 clips with the same
emotion, separated by pauses of line noise. A model trained with ``ser train --split`` has
never heard these speakers; the shipped model (cross-validated recipe, trained on every
speaker at the end) has, so with it the calls show the pipeline, not held-out accuracy.
Two formats:

* ``mono16k/``: mono 16 kHz 16-bit PCM WAV, one speaker per call;
* ``stereo8k/``: stereo 8 kHz mu-law WAV (G.711), agent on the left, customer on the
  right, alternating turns, the idle channel carrying line noise only.

``truth.csv`` lists every placed clip (file, channel, start_s, end_s, emotion). Without
corpora the calls are built from :mod:`ser_lib.synth` speech-like sound and the truth
emotion is empty: the job's plumbing can be shown, not its accuracy.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ser_lib.audio import load
from ser_lib.synth import silence, speech_like

TRUTH_FIELDS = ["file", "channel", "start_s", "end_s", "emotion", "clip"]


def _test_clips(corpora: str | None):
    try:
        from training.corpora import default_corpora_root, discover
        from training.split import partition
    except ImportError:
        return []
    root = Path(corpora) if corpora else default_corpora_root()
    if not root.is_dir():
        return []
    return partition(discover([root]).clips)["test"]


def _episodes(clips, rng: random.Random, speaker: str | None = None):
    """Yield lists of 2-4 clips sharing speaker and emotion, emotions in random order."""
    pool = [c for c in clips if speaker is None or c.speaker == speaker]
    by_emotion: dict[str, list] = {}
    for c in pool:
        by_emotion.setdefault(c.emotion, []).append(c)
    while True:
        emo = rng.choice(sorted(by_emotion))
        yield emo, rng.sample(by_emotion[emo], min(len(by_emotion[emo]), rng.randint(2, 4)))


def build_calls(out_dir: str, corpora: str | None = None, n_calls: int = 4, minutes: float = 3.0,
                seed: int = 0, clips=None) -> dict:
    """Write ``n_calls`` mono and ``n_calls`` stereo call-like recordings and ``truth.csv``.

    Args:
        out_dir: created if missing.
        corpora: corpus root (default ``$SER_CORPORA`` or ``../shared/corpora``).
        n_calls: recordings per format.
        minutes: target length of each call (it ends after the episode that passes it).
        seed: everything is reproducible from it.
        clips: build from these :class:`training.corpora.Clip` instead of the split's test
            speakers (e.g. one cross-validation fold's held-out actors, ``bench/smoothing.py``).

    Returns:
        ``{"out_dir", "source": "corpora" | "synthetic", "files": [...], "audio_s": float}``.
    """
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "mono16k").mkdir(parents=True, exist_ok=True)
    (out / "stereo8k").mkdir(parents=True, exist_ok=True)
    clips = _test_clips(corpora) if clips is None else list(clips)
    speakers = sorted({c.speaker for c in clips if c.corpus == "ravdess"}) or sorted({c.speaker for c in clips})
    truth, files, total_s = [], [], 0.0
    target = minutes * 60

    def clip_audio(c, sr):
        if c is None:
            return speech_like(rng.uniform(1.5, 3.5), sr, nrng)
        y, _ = load(c.path, sr)
        # corpus clips carry ~0.5-1 s of room silence at each end; trimmed, the truth
        # interval is the utterance and the pauses between clips are the call's silence
        y, _ = librosa.effects.trim(y.mean(axis=0), top_db=35, frame_length=512, hop_length=128)
        return y

    def episodes(speaker):
        if not clips:
            while True:
                yield None, [None] * rng.randint(2, 4)
        yield from _episodes(clips, rng, speaker)

    for k in range(n_calls):
        for fmt, sr, n_ch in (("mono16k", 16000, 1), ("stereo8k", 8000, 2)):
            name = f"{fmt}/call_{k:03d}.wav"
            chans = [[] for _ in range(n_ch)]
            t = [0.0]
            who = rng.sample(speakers, n_ch) if speakers and len(speakers) >= n_ch else [None] * n_ch
            gens = [episodes(s) for s in who]
            turn = 0
            while t[0] < target:
                ch = turn % n_ch
                emo, eps = next(gens[ch])
                for c in eps:
                    y = clip_audio(c, sr)
                    pause = silence(rng.uniform(0.4, 1.5), sr, nrng)
                    for j in range(n_ch):  # the idle channel hears line noise for the same time
                        chans[j].append(y if j == ch else silence(len(y) / sr, sr, nrng))
                        chans[j].append(pause if j == ch else silence(len(pause) / sr, sr, nrng))
                    truth.append({"file": name, "channel": "mono" if n_ch == 1 else ["agent", "customer"][ch],
                                  "start_s": round(t[0], 4), "end_s": round(t[0] + len(y) / sr, 4),
                                  "emotion": emo or "", "clip": Path(c.path).name if c else "synthetic"})
                    t[0] += (len(y) + len(pause)) / sr
                turn += 1
            data = np.stack([np.concatenate(c) for c in chans], axis=1)
            sf.write(out / name, np.clip(data, -1, 1), sr, subtype="PCM_16" if n_ch == 1 else "ULAW")
            files.append(name)
            total_s += len(data) / sr
    with open(out / "truth.csv", "w", newline="") as f:
        w = csv.DictWriter(f, TRUTH_FIELDS)
        w.writeheader()
        w.writerows(truth)
    return {"out_dir": str(out), "source": "corpora" if clips else "synthetic", "files": files,
            "audio_s": round(total_s, 1)}


def score_calls(segments, truth_csv: str, resolution_s: float = 0.01) -> dict:
    """Agreement of the job's timelines with ``truth.csv``, measured over time.

    Args:
        segments: the job's ``segments`` table as a pandas DataFrame; its
            ``emotion_smoothed`` (what the timeline shows) is scored, or ``emotion`` in
            output written before that column existed.
        truth_csv: written by :func:`build_calls`.
        resolution_s: time step of the comparison, seconds.

    Returns:
        ``speech_recall`` (share of truth speech time flagged speech), ``accuracy``
        (share of truth speech time whose timeline emotion equals the truth), ``ua``
        (mean of per-emotion time recalls), ``per_emotion`` recalls, ``truth_speech_s``,
        and ``accuracy_on_speech`` / ``ua_on_speech``: the same over the truth time the
        job flagged as speech (the model's share, without the speech detector's misses).
    """
    import pandas as pd

    from ser_lib.timeline import cells

    truth = pd.read_csv(truth_csv, keep_default_na=False)
    truth = truth[truth["emotion"] != ""]
    segments = segments.assign(file=segments["source_path"].str.replace(r"^.*?/((mono16k|stereo8k)/[^/]+)$", r"\1",
                                                                        regex=True))
    hit, speech, total = {}, {}, {}  # per truth emotion: time steps matched / flagged speech / all
    for (file, channel), tr in truth.groupby(["file", "channel"]):
        seg = segments[(segments["file"] == file) & (segments["channel"] == channel)].sort_values("start_s")
        if seg.empty:
            continue
        c0, c1 = cells(seg["start_s"].to_numpy(), seg["end_s"].to_numpy())
        emos = seg["emotion_smoothed" if "emotion_smoothed" in seg else "emotion"].fillna("").to_numpy()
        for row in tr.itertuples():
            ts = np.arange(row.start_s, row.end_s, resolution_s)
            idx = np.clip(np.searchsorted(c1, ts, side="right"), 0, len(c1) - 1)
            pred = emos[idx]
            total[row.emotion] = total.get(row.emotion, 0) + len(ts)
            speech[row.emotion] = speech.get(row.emotion, 0) + int((pred != "").sum())
            hit[row.emotion] = hit.get(row.emotion, 0) + int((pred == row.emotion).sum())
    n = sum(total.values())
    per = {e: round(hit[e] / total[e], 4) for e in sorted(total)}
    n_speech = sum(speech.values())
    on_speech = {e: hit[e] / speech[e] for e in total if speech[e]}
    return {"truth_speech_s": round(n * resolution_s, 1),
            "speech_recall": round(n_speech / n, 4) if n else None,
            "accuracy": round(sum(hit.values()) / n, 4) if n else None,
            "ua": round(float(np.mean(list(per.values()))), 4) if per else None,
            "accuracy_on_speech": round(sum(hit.values()) / n_speech, 4) if n_speech else None,
            "ua_on_speech": round(float(np.mean(list(on_speech.values()))), 4) if on_speech else None,
            "per_emotion": per}
