"""The 8 kHz-path clip features of ``../2026-12-07-accurate/features8k.py`` with each encoder variant.

Every clip of RAVDESS, TESS, TurEV-DB, EMOVO (6,563; the order of ``meta-encoder.json``) is
decoded and resampled to 8 kHz (``training.dataset.clip_samples``), trimmed and levelled
(``ser_lib.encoder_head.prepare``), cut into partials (``ser_lib.encoder.partial_mels``) once,
and the same mel partials are run through each encoder variant (``quantize.py``'s files, on
``ser_lib.encoder.SpeechEncoder``, 1 thread); the last LSTM layer's state is mean+std pooled
(``pool_stats``): what ``segment_features`` does, the encoder swapped. ``rate1.2`` is the float
encoder with ``SegmentSettings.rate`` 1.2 (1 partial per 2 s window instead of 2);
``qint8-pc-skip0-rate1.2`` both levers. (``quint8`` differs from ``qint8`` only in the final
linear layer, which the features do not use: its LSTMs are int8 either way.)

Usage: python models/runs/2026-12-07-encoder-int8/features_int8.py CACHE_DIR VARIANT_DIR OUT_DIR
(CACHE_DIR: encoder.onnx, meta-encoder.json, enc-8k.npy of the accurate run; VARIANT_DIR:
quantize.py's output). Writes OUT_DIR/enc-8k-{VARIANT}.npy and
checks that ``float`` equals the cached enc-8k.npy.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ser_lib.encoder import SpeechEncoder, partial_mels, pool_stats
from ser_lib.encoder_head import SegmentSettings, prepare
from training.dataset import clip_samples

QUANT = ("qint8", "qint8-pc", "qint8-skip0", "qint8-pc-skip0")


def main(cache: str, variants: str, out: str) -> None:
    cache, variants, out = Path(cache), Path(variants), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    encs = {"float": SpeechEncoder(cache / "encoder.onnx", threads=1)}
    encs.update({k: SpeechEncoder(variants / f"{k}.onnx", threads=1) for k in QUANT})
    st = SegmentSettings()
    st12 = replace(st, rate=1.2)
    rows = {k: [] for k in (*encs, "rate1.2", "qint8-pc-skip0-rate1.2")}
    cpu = {k: 0.0 for k in rows}
    t0 = time.time()
    for i, (path, *_rest) in enumerate(clips):
        w = prepare(clip_samples(path, 8000), st)
        mels = partial_mels(w, 8000, st.rate, st.min_coverage)[0]
        for k, enc in encs.items():
            c = time.process_time()
            rows[k].append(pool_stats(enc.run(mels)[1][:, st.layer]))
            cpu[k] += time.process_time() - c
        c = time.process_time()
        m12 = partial_mels(w, 8000, st12.rate, st12.min_coverage)[0]
        rows["rate1.2"].append(pool_stats(encs["float"].run(m12)[1][:, st.layer]))
        cpu["rate1.2"] += time.process_time() - c
        c = time.process_time()
        rows["qint8-pc-skip0-rate1.2"].append(pool_stats(encs["qint8-pc-skip0"].run(m12)[1][:, st.layer]))
        cpu["qint8-pc-skip0-rate1.2"] += time.process_time() - c
        if i % 500 == 0:
            print(f"  {i}/{len(clips)} {time.time() - t0:.0f} s", flush=True)
    for k, r in rows.items():
        np.save(out / f"enc-8k-{k}.npy", np.stack(r))
    ref = np.load(cache / "enc-8k.npy")
    print("float vs cached enc-8k.npy max abs diff", float(np.abs(np.stack(rows["float"]) - ref).max()))
    print("encoder CPU s (rate1.2 includes its mel partials):", {k: round(v, 1) for k, v in cpu.items()}, flush=True)
    (out / "features-cpu.json").write_text(json.dumps(cpu, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
