"""CPU cost of the served encoder (ser_lib.encoder.SpeechEncoder: soxr resampling, librosa mel
front end, ONNX LSTM on 1 onnxruntime thread) per audio hour, one process.

Waits (up to --wait s) for the 1-minute load average to fall under --quiet before timing, and
records the load before and after: the machine's 2 cores are shared.

Usage (repository root): python models/runs/2026-12-07-encoder/bench_encoder.py ENCODER_ONNX OUT_JSON
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ser_lib.encoder import SpeechEncoder
from training.corpora import default_corpora_root, load_ravdess
from training.dataset import clip_samples


def main(onnx: str, out: str, quiet: float = 1.0, wait: float = 600.0) -> None:
    clips = load_ravdess(default_corpora_root() / "ravdess").clips[::8][:150]
    wide = [clip_samples(c.path, 16000) for c in clips]
    tel = [clip_samples(c.path, 8000) for c in clips]
    enc = SpeechEncoder(onnx, threads=1)
    enc.partials(wide[0])  # warm-up
    t_wait = time.time()
    while os.getloadavg()[0] > quiet and time.time() - t_wait < wait:
        time.sleep(10)
    res = {"clips": len(clips), "waited_s": round(time.time() - t_wait, 1), "quiet_threshold": quiet}
    for name, wavs, sr in (("wideband_16k", wide, 16000), ("telephone_8k", tel, 8000)):
        audio_h = sum(len(w) for w in wavs) / sr / 3600
        load0 = os.getloadavg()
        reps = []
        for _ in range(3):
            c0, w0 = time.process_time(), time.perf_counter()
            for w in wavs:
                enc.partials(w, sr)
            reps.append((time.process_time() - c0, time.perf_counter() - w0))
        cpu = float(np.median([r[0] for r in reps]))
        wall = float(np.median([r[1] for r in reps]))
        res[name] = {"audio_hours": audio_h, "cpu_s_per_audio_hour": cpu / audio_h,
                     "wall_s_per_audio_hour": wall / audio_h, "realtime_factor_one_core": audio_h * 3600 / wall,
                     "loadavg_before": load0, "loadavg_after": os.getloadavg()}
        print(name, res[name], flush=True)
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(float(a) for a in sys.argv[3:]))
