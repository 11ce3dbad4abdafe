"""Speech-like synthetic audio for tests, demos and benchmarks when no corpus is at hand.

Not speech: a voiced source (harmonics of a gliding 100-250 Hz fundamental) through two
moving formant resonances (F1 300-800 Hz, F2 900-2100 Hz, sweeping at syllable rate),
shaped by a syllable-rate (4 Hz) amplitude envelope, plus a little noise: it has the
energy contour, harmonic structure and changing spectrum the features and the speech
detector respond to (:mod:`ser_lib.speech`), nothing more.
"""
from __future__ import annotations

import numpy as np


def speech_like(duration_s: float, sample_rate: int, rng: np.random.Generator, level_db: float = -20.0) -> np.ndarray:
    """``np.ndarray[shape=(round(duration_s*sample_rate),), dtype=float32]`` of speech-like sound
    whose RMS over voiced stretches is about ``level_db`` dBFS."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    # formants move with the syllables, so the spectrum changes as in speech (a steady
    # harmonic spectrum is what a tone or hum has, and the speech detector rejects it)
    f1 = 550 + 250 * np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 2 * np.pi))
    f2 = 1500 + 600 * np.sin(2 * np.pi * rng.uniform(1.5, 3.5) * t + rng.uniform(0, 2 * np.pi))
    voiced = sum((1 / k + 2 * np.exp(-((k * f0 - f1) / 150) ** 2) + np.exp(-((k * f0 - f2) / 250) ** 2))
                 * np.sin(k * phase) for k in range(1, 24) if k * f0.max() < sample_rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, np.pi)), 0, None) ** 0.5
    y = voiced * envelope + 0.02 * rng.standard_normal(n)
    rms = np.sqrt(np.mean(y ** 2)) + 1e-12
    return (y / rms * 10 ** (level_db / 20)).astype(np.float32)


def silence(duration_s: float, sample_rate: int, rng: np.random.Generator, level_db: float = -70.0) -> np.ndarray:
    """Low-level noise (line noise at ``level_db`` dBFS RMS), float32."""
    n = int(round(duration_s * sample_rate))
    return (rng.standard_normal(n) * 10 ** (level_db / 20)).astype(np.float32)


# ---------------------------------------------------------------- conversations with placed turns
def trimmed(y: np.ndarray, top_db: float = 30.0) -> np.ndarray:
    """``y`` without its leading and trailing quiet part: frames (32 ms, 10 ms hop at 8 kHz)
    more than ``top_db`` under the loudest frame (``librosa.effects.trim``). The placed
    truth of a turn is the trimmed clip's span."""
    import librosa
    return librosa.effects.trim(np.asarray(y, dtype=np.float32), top_db=top_db, frame_length=256,
                                hop_length=80)[0]


def pink_noise(n: int, rng: np.random.Generator, level_db: float = -50.0) -> np.ndarray:
    """``float32 (n,)`` pink (1/f power) Gaussian noise at ``level_db`` dBFS RMS: white noise
    through the 3-pole/3-zero 1/f filter of J. O. Smith, *Spectral Audio Signal Processing*
    ("Example: Synthesis of 1/f Noise (Pink Noise)", CCRMA), within 0.3 dB of 1/f above
    ~10 Hz at any rate; the filter's first 2,000 samples (its transient) are dropped."""
    from scipy.signal import lfilter
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    y = lfilter(b, a, rng.standard_normal(n + 2000))[2000:]
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12) * 10 ** (level_db / 20)).astype(np.float32)


def conversation_plan(rng: np.random.Generator, n_turns: int = 12, turn_s=(1.5, 6.0), gap_s=(1.0, 30.0),
                      overlap_s=(0.3, 3.0), p_overlap: float = 0.35, avoid_s: tuple | None = None,
                      lead_s: float = 1.0, min_pause_s: float = 1.0) -> list[tuple[int, float, float]]:
    """Turns of two alternating speakers with placed gaps and overlaps.

    Each turn after the first follows the previous one either after a gap (uniform in
    ``gap_s``, log-uniform so that short and long silences both occur) or, with
    probability ``p_overlap``, starts ``overlap`` s (uniform in ``overlap_s``) before the
    previous turn ends. ``avoid_s=(lo, hi)``: overlaps inside it are redrawn (e.g. around
    the 2 s of the interruption rule, where placement and detection can disagree by
    a frame). A turn never starts less than ``min_pause_s`` after its own channel's previous
    turn ended (else the two would be one talk spurt, and an overlap is shortened or
    becomes a gap).

    Returns:
        ``[(channel 0|1, start_s, end_s)]`` in start order, seconds; the first turn starts
        at ``lead_s``. An overlap is always shorter than both turns it joins.
    """
    turns, t, ch = [], lead_s, int(rng.integers(2))
    for i in range(n_turns):
        d = float(rng.uniform(*turn_s))
        if i:
            prev = turns[-1]
            # a channel's next turn starts at least min_pause_s after its previous one ended
            room = prev[2] - (turns[-2][2] + min_pause_s if len(turns) > 1 else prev[1])
            if rng.random() < p_overlap and min(room, 0.8 * (prev[2] - prev[1])) >= overlap_s[0]:
                while True:
                    o = float(rng.uniform(*overlap_s))
                    if avoid_s is None or not avoid_s[0] < o < avoid_s[1]:
                        break
                o = min(o, 0.8 * (prev[2] - prev[1]), room)
                if avoid_s is not None and avoid_s[0] < o < avoid_s[1]:
                    o = avoid_s[0]
                d = max(d, o / 0.8)
                t = prev[2] - o
            else:
                t = prev[2] + float(np.exp(rng.uniform(np.log(gap_s[0]), np.log(gap_s[1]))))
        turns.append((ch, t, t + d))
        ch = 1 - ch
    return turns


def placed_call(plan: list[tuple[int, float, float]], sample_rate: int, rng: np.random.Generator,
                levels_db=(-20.0, -40.0), noise_db: float | None = -50.0, tail_s: float = 1.0,
                clips: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """A two-channel call with the turns of ``plan`` (:func:`conversation_plan`).

    Each turn is speech-like sound (:func:`speech_like`) or, with ``clips`` (mono arrays at
    ``sample_rate``, e.g. corpus recordings), clips laid end to end until the turn is
    filled, cut to length, trimmed (:func:`trimmed`) and scaled to its channel's level
    (RMS over the turn, dBFS). Line noise (white, ``noise_db`` dBFS RMS; None: digital
    silence) runs under both channels for the whole call.

    Returns:
        ``(audio float32 (n_samples, 2), truth)``: truth turns ``(channel, start_s, end_s)``
        as placed (after trimming), seconds.
    """
    end = max(e for _, _, e in plan) + tail_s
    n = int(round(end * sample_rate))
    out = np.zeros((n, 2), np.float32)
    if noise_db is not None:
        out += (rng.standard_normal((n, 2)) * 10 ** (noise_db / 20)).astype(np.float32)
    truth = []
    for ch, s, e in plan:
        want = int(round((e - s) * sample_rate))
        if clips:
            parts, got = [], 0
            while got < want:
                c = trimmed(clips[int(rng.integers(len(clips)))])
                parts.append(c)
                got += len(c)
            y = np.concatenate(parts)[:want]
        else:
            y = speech_like(e - s, sample_rate, rng)[:want]
        y = trimmed(y)
        y = y * (10 ** (levels_db[ch] / 20) / (np.sqrt(np.mean(y ** 2)) + 1e-12))
        i0 = int(round(s * sample_rate))
        y = y[:n - i0]
        out[i0:i0 + len(y), ch] += y.astype(np.float32)
        truth.append((ch, i0 / sample_rate, (i0 + len(y)) / sample_rate))
    return out, sorted(truth, key=lambda t: t[1])


def event_errors(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Per-event duration errors of detected intervals against placed ones, seconds.

    Each truth interval (``(k, 2)`` seconds) is matched with the found interval it shares
    most time with; its error is the absolute difference of their lengths (its own length
    when nothing overlaps it). Found intervals that overlap no truth interval are events
    the detector made up: each adds its length as an error.

    Returns:
        ``float64 (k + n_unmatched,)`` errors, s.
    """
    errs, used = [], np.zeros(len(found), bool)
    for a, b in truth:
        inter = np.clip(np.minimum(found[:, 1], b) - np.maximum(found[:, 0], a), 0, None) if len(found) else []
        if len(inter) and inter.max() > 0:
            j = int(np.argmax(inter))
            used[j] = True
            errs.append(abs((found[j, 1] - found[j, 0]) - (b - a)))
        else:
            errs.append(b - a)
    for j, (a, b) in enumerate(found):
        hit = len(truth) and (np.minimum(truth[:, 1], b) - np.maximum(truth[:, 0], a) > 0).any()
        if not used[j] and not hit:
            errs.append(b - a)
    return np.asarray(errs, dtype=float)
