"""BASELINE BEING COMPARED AGAINST -- not product code.

The popular Kaggle/GitHub speech-emotion notebook pattern that this project's seeds
followed, reproduced only to be *timed* (its weights are untrained; nothing it outputs
is scored or used):

* per file ``librosa.load(path, sr=22050)`` (mono mix-down, soxr_hq resampling);
* non-overlapping 2.5 s windows (the last one zero-padded to 2.5 s);
* per window the seed feature vector: flattened ``zero_crossing_rate`` and ``rms``
  (frame_length=2048, hop_length=512) and ``mfcc(n_mfcc=20)`` frames (frame-major, as the
  seeds' ``np.ravel(mfcc.T)``) -> 108 + 108 + 2160 = 2376 values, standardised
  (the seeds' fitted ``StandardScaler``; here identity statistics, same cost);
* the seeds' Conv1D stack (below) and ``model.predict`` called once per window, as the
  seeds' ``get_predictions`` does.

``python -m bench.seed_baseline --json OUT FILE...`` runs it over files and writes the
timings (decode, features, model, wall); :mod:`bench.run` calls it in a subprocess so
TensorFlow gets the machine's default threads (all cores) as in the notebooks.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

SR = 22050
WINDOW_S = 2.5
FRAME_LENGTH = 2048
HOP_LENGTH = 512
N_MFCC = 20
N_CLASSES = 7


def n_features(sr: int = SR, window_s: float = WINDOW_S) -> int:
    """Length of the seed feature vector (2376 at 22050 Hz, 2.5 s)."""
    frames = 1 + round(window_s * sr) // HOP_LENGTH  # librosa's centred framing
    return frames * (2 + N_MFCC)


def seed_features(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """The seeds' ``extract_features``: ZCR, RMS and MFCC frames, flattened and concatenated."""
    import librosa
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    rms = librosa.feature.rms(y=y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC)
    return np.hstack((np.squeeze(zcr), np.squeeze(rms), np.ravel(mfcc.T)))


def build_seed_model(n_in: int | None = None, n_classes: int = N_CLASSES, seed: int = 0):
    """The seeds' Keras Sequential Conv1D stack (untrained)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    n_in = n_in or n_features()
    return keras.Sequential([
        keras.Input(shape=(n_in, 1)),
        layers.Conv1D(512, kernel_size=5, strides=1, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPool1D(pool_size=5, strides=2, padding="same"),
        layers.Conv1D(512, kernel_size=5, strides=1, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPool1D(pool_size=5, strides=2, padding="same"),
        layers.Dropout(0.2),
        layers.Conv1D(256, kernel_size=5, strides=1, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPool1D(pool_size=5, strides=2, padding="same"),
        layers.Conv1D(256, kernel_size=3, strides=1, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPool1D(pool_size=5, strides=2, padding="same"),
        layers.Dropout(0.2),
        layers.Conv1D(128, kernel_size=3, strides=1, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPool1D(pool_size=3, strides=2, padding="same"),
        layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(n_classes, activation="softmax"),
    ], name="seed_cnn")


def get_predictions(path: str, model, mean: np.ndarray, std: np.ndarray, timings: dict) -> list[int]:
    """The seeds' per-file loop: load, cut 2.5 s windows, features, one ``model.predict`` per window."""
    import librosa
    t0 = time.perf_counter()
    y, sr = librosa.load(path, sr=SR)
    t1 = time.perf_counter()
    timings["decode_s"] += t1 - t0
    timings["audio_s"] += len(y) / sr
    win = round(WINDOW_S * sr)
    preds = []
    for start in range(0, max(len(y), 1), win):
        t0 = time.perf_counter()
        chunk = y[start:start + win]
        if len(chunk) < win:
            chunk = np.pad(chunk, (0, win - len(chunk)))
        x = (seed_features(chunk, sr) - mean) / std          # scaler.transform
        x = np.expand_dims(x.reshape(1, -1), axis=2)         # (1, 2376, 1)
        t1 = time.perf_counter()
        p = model.predict(x, verbose=0)                       # once per window, as the seeds
        t2 = time.perf_counter()
        preds.append(int(np.argmax(p)))
        timings["features_s"] += t1 - t0
        timings["model_s"] += t2 - t1
        timings["windows"] += 1
    return preds


def run(files: list[str], warmup: bool = True) -> dict:
    """Time the baseline over ``files``; model build and a warm-up predict are timed apart."""
    t0 = time.perf_counter()
    model = build_seed_model()
    n_in = n_features()
    mean, std = np.zeros(n_in, np.float32), np.ones(n_in, np.float32)
    if warmup:  # first predict traces the graph: start-up, not per-window cost
        model.predict(np.zeros((1, n_in, 1), np.float32), verbose=0)
        seed_features(np.zeros(round(WINDOW_S * SR), np.float32))
    startup = time.perf_counter() - t0
    timings = {"decode_s": 0.0, "features_s": 0.0, "model_s": 0.0, "audio_s": 0.0, "windows": 0}
    t0 = time.perf_counter()
    for f in files:
        get_predictions(f, model, mean, std, timings)
    wall = time.perf_counter() - t0
    return {"pipeline": "seed_baseline", "files": len(files), "wall_s": round(wall, 3),
            "startup_s": round(startup, 3), "audio_s": round(timings["audio_s"], 3),
            "x_realtime": round(timings["audio_s"] / wall, 2) if wall > 0 else None,
            "windows": timings["windows"], "params": int(model.count_params()),
            "stage_s": {k: round(timings[k], 3) for k in ("decode_s", "features_s", "model_s")},
            "s_per_window": round(wall / max(timings["windows"], 1), 4),
            "threads": {"tf_intra_op": os.environ.get("TF_NUM_INTRAOP_THREADS", "default (all cores)"),
                        "cpu_count": os.cpu_count()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="time the seed-style baseline (not product code)")
    p.add_argument("--json", required=True, help="write the timings here")
    p.add_argument("files", nargs="+")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    res = run(a.files)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
