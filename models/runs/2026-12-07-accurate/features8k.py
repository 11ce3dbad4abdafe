"""Encoder-head features of every corpus clip on the job's 8 kHz path, written to a cache.

Each clip of RAVDESS, TESS, TurEV-DB and EMOVO (the clip order of the encoder probe's
``meta-encoder.json``) is decoded and resampled to the job's model rate (8 kHz, soxr HQ:
``training.encoder_head.clip_samples_at``, what ``ser_lib.stream.StreamAnalyzer`` does to a
16 kHz file) and turned into the head's input by ``ser_lib.encoder_head.segment_features``
(upsampled to 16 kHz inside the encoder, as serving does): ``enc-8k.npy`` ``(n_clips, 512)``.

Usage: python models/runs/2026-12-07-accurate/features8k.py CACHE_DIR   (CACHE_DIR holds
encoder.onnx and meta-encoder.json of models/runs/2026-12-07-encoder/features.py)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ser_lib.encoder import SpeechEncoder
from ser_lib.encoder_head import SegmentSettings, segment_features
from training.dataset import clip_samples


def main(cache: str) -> None:
    cache = Path(cache)
    clips = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    enc = SpeechEncoder(cache / "encoder.onnx", threads=1)
    settings = SegmentSettings()
    rows, cpu0, t0 = [], time.process_time(), time.time()
    for i, (path, *_rest) in enumerate(clips):
        rows.append(segment_features(enc, clip_samples(path, 8000), 8000, settings))
        if i % 500 == 0:
            print(f"  8k {i}/{len(clips)} {time.time() - t0:.0f} s", flush=True)
    np.save(cache / "enc-8k.npy", np.stack(rows))
    print(f"done: {len(rows)} clips, {time.process_time() - cpu0:.0f} CPU s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
