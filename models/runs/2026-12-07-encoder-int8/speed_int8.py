"""CPU time and embedding agreement of the encoder variants on real 8 kHz speech windows.

300 windows of 2 s (hop 1 s, as the job's speech windows) cut from corpus speech at the job's
8 kHz (``training.dataset.clip_samples``): 6 speakers (EMOVO and TurEV-DB, 3 each, the
first in sorted order), each speaker's clips (``meta-encoder.json`` order) joined by 0.3 s of
silence, the first 50 windows of each speaker. Each variant encodes all 300 windows as serving does
(``ser_lib.encoder_head.segments_features``: trim, level, mel, partials batched 64 per ONNX
call) and, separately, only the ONNX model on the same precomputed mel partials.

Timing: ``time.process_time`` of this one process (CPU time, not wall time: the 2-core
machine was shared), onnxruntime with 1 intra-op and 1 inter-op thread, variants interleaved
within each round, the order rotated each round, ROUNDS rounds; min and median reported.
Per speech-hour: the windows hop 1 s, so an hour of speech is 3,600 windows (per
window-hour, the unit of ``../2026-12-07-accurate/window-encoding.json``, is half of it).
Agreement: cosine of each window's 512 features (last LSTM layer mean + std) with the float
encoder's.

Usage: python models/runs/2026-12-07-encoder-int8/speed_int8.py CACHE_DIR VARIANT_DIR OUT_JSON [ROUNDS]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ser_lib.encoder import SpeechEncoder, partial_mels
from ser_lib.encoder_head import SegmentSettings, prepare, segments_features
from training.dataset import clip_samples

SR = 8000
N_WIN = 300


def windows(cache: Path) -> list[np.ndarray]:
    clips = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    out = []
    for corpus in ("emovo", "turev"):
        spk = sorted({c[2] for c in clips if c[1] == corpus})[:3]
        for s in spk:
            parts, n = [], 0
            for c in [c for c in clips if c[2] == s]:  # the speaker's clips until 51 s
                parts += [clip_samples(c[0], SR), np.zeros(int(0.3 * SR), np.float32)]
                n += len(parts[-2]) + len(parts[-1])
                if n >= (N_WIN // 6 + 1) * SR:
                    break
            y = np.concatenate(parts)
            out += [y[i * SR:(i + 2) * SR] for i in range(N_WIN // 6)]
    assert len(out) == N_WIN and all(len(w) == 2 * SR for w in out)
    return out


def encoder(path: Path, level=None, mode=None) -> SpeechEncoder:
    enc = SpeechEncoder(path, threads=1)
    if level is not None or mode is not None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        if level is not None:
            opts.graph_optimization_level = level
        if mode is not None:
            opts.execution_mode = mode
        enc.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return enc


def main(cache: str, variants: str, out_json: str, rounds: int = 3) -> None:
    cache, variants = Path(cache), Path(variants)
    wins = windows(cache)
    st = SegmentSettings()
    L = ort.GraphOptimizationLevel
    f = cache / "encoder.onnx"
    # name -> (encoder, settings, batch size)
    V = {"float (shipped)": (encoder(f), st, 64),
         "float, graph opt disabled": (encoder(f, L.ORT_DISABLE_ALL), st, 64),
         "float, graph opt basic": (encoder(f, L.ORT_ENABLE_BASIC), st, 64),
         "float, saved ORT_ENABLE_ALL model": (encoder(variants / "opt-all.onnx"), st, 64),
         "float, execution mode parallel": (encoder(f, mode=ort.ExecutionMode.ORT_PARALLEL), st, 64),
         "float, batch 600": (encoder(f), st, 600),
         "float, rate 1.2 (1 partial per window)": (encoder(f), replace(st, rate=1.2), 64),
         "qint8": (encoder(variants / "qint8.onnx"), st, 64),
         "quint8": (encoder(variants / "quint8.onnx"), st, 64),
         "qint8 per-channel": (encoder(variants / "qint8-pc.onnx"), st, 64),
         "quint8 per-channel": (encoder(variants / "quint8-pc.onnx"), st, 64),
         "qint8 reduce_range": (encoder(variants / "qint8-rr.onnx"), st, 64),
         "qint8, first LSTM float": (encoder(variants / "qint8-skip0.onnx"), st, 64),
         "qint8 per-channel, first LSTM float": (encoder(variants / "qint8-pc-skip0.onnx"), st, 64),
         "qint8 per-channel, first LSTM float, rate 1.2": (encoder(variants / "qint8-pc-skip0.onnx"),
                                                           replace(st, rate=1.2), 64)}
    mels = {}
    for name, (_e, s, _b) in V.items():
        mels.setdefault(s.rate, np.concatenate([partial_mels(prepare(w, s), SR, s.rate, s.min_coverage)[0] for w in wins]))
    feats, full, onnx_only = {}, {k: [] for k in V}, {k: [] for k in V}
    names = list(V)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            enc, s, bs = V[name]
            t = time.process_time()
            enc.run(mels[s.rate], batch_size=bs)
            onnx_only[name].append(time.process_time() - t)
            t = time.process_time()
            x = segments_features(_Batched(enc, bs), wins, SR, s)
            full[name].append(time.process_time() - t)
            feats[name] = x
        print(f"round {r + 1}: " + ", ".join(f"{k} {full[k][-1]:.2f}/{onnx_only[k][-1]:.2f}" for k in names), flush=True)
    ref = feats["float (shipped)"]
    per_hour = 3600 / N_WIN  # windows per speech-hour / windows measured
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " ") + " " + __doc__.split("\n\n")[2].replace("\n", " "),
           "windows": N_WIN, "partials": {str(k): int(len(v)) for k, v in mels.items()}, "rounds": rounds,
           "onnxruntime": ort.__version__, "variants": {}}
    base = statistics.median(full["float (shipped)"])
    base_o = statistics.median(onnx_only["float (shipped)"])
    for k in names:
        cos = (feats[k] * ref).sum(1) / (np.linalg.norm(feats[k], axis=1) * np.linalg.norm(ref, axis=1))
        out["variants"][k] = {
            "full_cpu_s": full[k], "onnx_cpu_s": onnx_only[k],
            "full_cpu_s_per_speech_hour_median": statistics.median(full[k]) * per_hour,
            "full_cpu_s_per_speech_hour_min": min(full[k]) * per_hour,
            "onnx_cpu_s_per_speech_hour_median": statistics.median(onnx_only[k]) * per_hour,
            "speedup_full_median": base / statistics.median(full[k]),
            "speedup_onnx_median": base_o / statistics.median(onnx_only[k]),
            "cosine_vs_float_mean": float(cos.mean()), "cosine_vs_float_min": float(cos.min())}
        v = out["variants"][k]
        print(f"{k:42s} full {v['full_cpu_s_per_speech_hour_median']:6.2f} CPU-s/speech-h (x{v['speedup_full_median']:.2f}) "
              f"onnx {v['onnx_cpu_s_per_speech_hour_median']:6.2f} (x{v['speedup_onnx_median']:.2f}) "
              f"cos {v['cosine_vs_float_mean']:.5f} min {v['cosine_vs_float_min']:.5f}", flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


class _Batched:
    """``enc`` whose ``run`` uses batch size ``bs`` (what ``segments_features`` calls)."""

    def __init__(self, enc: SpeechEncoder, bs: int):
        self.enc, self.bs = enc, bs

    def run(self, mels):
        return self.enc.run(mels, batch_size=self.bs)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 3)
