"""The floor for any spectral method: one bare magnitude STFT per channel.

Per file, in a pool of ``processes`` worker processes (the job's parallelism on this
machine): decode and resample to the model rate exactly as the job does
(:func:`ser_lib.audio.load`), then per channel the leanest STFT with the job's frame
parameters -- a strided frame view, Hann window (``win_length`` padded to ``n_fft``),
single-precision real FFT along contiguous rows, magnitude. Nothing else (no mel,
no features, no windows, no model).

Reported: ``stft_s`` (STFT seconds summed over processes, directly comparable with the
job's ``worker_stage_s.features_s``), ``decode_s`` (summed), ``wall_s`` of the whole pass
(decode + STFT, all processes), and x-realtime both of the whole pass and of the STFT
alone spread over the processes (``audio_s / (stft_s / processes)``). For comparison the
same processes also time :func:`ser_lib.features.frame_features` on the same channels
(``frame_features_s``, a separate pass after the timed one).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np

_STATE: dict = {}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init(threads: int) -> None:
    import scipy.fft  # noqa: F401  (imports outside the timed region)
    import scipy.signal  # noqa: F401

    from ser_lib.features import FeatureConfig, frame_features
    _STATE["cfg"] = cfg = FeatureConfig()
    y = np.random.default_rng(0).normal(size=cfg.sample_rate).astype(np.float32)
    bare_stft(y, cfg.n_fft, cfg.hop_length, cfg.win_length)  # FFT plans, filter banks: not timed
    frame_features(y, cfg)


def bare_stft(y: np.ndarray, n_fft: int, hop: int, win_length: int) -> np.ndarray:
    """``|STFT|`` of ``y`` (float32, no centring), shape ``(n_frames, n_fft // 2 + 1)``."""
    import scipy.fft
    import scipy.signal
    win = np.zeros(n_fft, np.float32)
    off = (n_fft - win_length) // 2
    win[off:off + win_length] = scipy.signal.get_window("hann", win_length, fftbins=True)
    n = 1 + (len(y) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, n_fft), strides=(y.strides[0] * hop, y.strides[0]),
                                             writeable=False)
    return np.abs(scipy.fft.rfft(frames * win, axis=-1))


def _one(path: str) -> tuple[float, float, float, int]:
    from ser_lib.audio import load
    cfg = _STATE["cfg"]
    t0 = time.perf_counter()
    samples, _ = load(path, cfg.sample_rate)
    t1 = time.perf_counter()
    frames = 0
    for y in samples:
        frames += bare_stft(y, cfg.n_fft, cfg.hop_length, cfg.win_length).shape[0]
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, samples.shape[1] / cfg.sample_rate, frames


def _features(path: str) -> float:
    """Seconds of :func:`ser_lib.features.frame_features` over the file's channels (decode not timed)."""
    from ser_lib.audio import load
    from ser_lib.features import frame_features
    cfg = _STATE["cfg"]
    samples, _ = load(path, cfg.sample_rate)
    t0 = time.perf_counter()
    for y in samples:
        frame_features(y, cfg)
    return time.perf_counter() - t0


def run(files: list[str], processes: int = 2, threads: int = 1) -> dict:
    """Time the bare STFT pass over ``files``; see the module docstring."""
    ctx = mp.get_context("spawn")  # no fork of a process that may hold a JVM gateway
    # BLAS/OpenMP read their thread counts when numpy loads, before _init runs: set them in
    # the environment the children start with (one thread each, like the job's workers)
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: str(threads) for v in _THREAD_VARS})
    try:
        pool = ctx.Pool(processes, initializer=_init, initargs=(threads,))
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    with pool:
        pool.map(_one, files[:processes], chunksize=1)  # warm-up: imports, FFT plans (not timed)
        t0 = time.perf_counter()
        res = pool.map(_one, files, chunksize=1)
        wall = time.perf_counter() - t0
        # for comparison, not part of the floor: the job's frame features on the same channels
        feats = pool.map(_features, files, chunksize=1)
    decode_s = sum(r[0] for r in res)
    stft_s = sum(r[1] for r in res)
    audio_s = sum(r[2] for r in res)
    return {"pipeline": "stft_floor", "files": len(files), "processes": processes, "wall_s": round(wall, 3),
            "audio_s": round(audio_s, 3), "decode_s": round(decode_s, 3), "stft_s": round(stft_s, 3),
            "frames": int(sum(r[3] for r in res)),
            # ser_lib.features.frame_features alone on the same channels in the same processes
            # (no windows, speech flags or streaming): the feature code's own cost vs the STFT
            "frame_features_s": round(sum(feats), 3),
            "frame_features_vs_stft": round(sum(feats) / stft_s, 2) if stft_s > 0 else None,
            "x_realtime": round(audio_s / wall, 1) if wall > 0 else None,
            "x_realtime_stft_only": round(audio_s / (stft_s / processes), 1) if stft_s > 0 else None}


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(sys.argv[1:]), indent=1))
