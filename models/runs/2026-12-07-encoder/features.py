"""Stage 1 of the encoder probe: per-clip features of every corpus clip, written to a cache folder.

For every clip of RAVDESS, TESS, TurEV-DB and EMOVO (training.corpora.discover), in two
conditions, wideband (the 16 kHz FLAC) and telephone (training.augment.telephone: G.711 at
8 kHz, 300-3400 Hz, seeded per clip with the recipe's telephone_test_seed):

- ``enc``: resemblyzer's GE2E encoder served as the product would serve it
  (ser_lib.encoder.SpeechEncoder on the ONNX export, 1 thread): the clip trimmed of leading
  and trailing silence (librosa.effects.trim, 35 dB under the peak), scaled to -30 dBFS RMS
  (resemblyzer's target level; both directions, so the input level does not matter), cut into
  1.6 s partials at 1.3 per second; per clip: mean and std over partials of the embedding
  (2 x 256) and of each LSTM layer's last hidden state (3 x 2 x 256).
- ``ac``: the product's acoustic features (ser_lib.features, the CNN's input): the clip's speech
  windows as the recipe cuts them (training.dataset.build_windows, hop 0.5 s), level-normalised
  (ser_lib.features.level_normalize), mean and std over all frames (2 x 77).
- ``cnn_final`` / ``cnn_loco``: clip probabilities (mean over windows) of the shipped ensemble
  (models/ser-cnn, never trained on EMOVO) and of its TurEV-DB leave-one-corpus-out model
  (models/ser-cnn/cv/loco), through ser_lib.runtime.Predictor as the job scores.

Also times the encoder (front end + ONNX, CPU seconds of this process) per audio hour.

Usage (from the repository root): python models/runs/2026-12-07-encoder/features.py CACHE_DIR
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ser_lib.encoder import SpeechEncoder, pool_stats
from ser_lib.features import FeatureConfig, level_normalize
from ser_lib.speech import SpeechConfig
from training.augment import TELEPHONE_SR, telephone, clip_seed, seed_key
from training.corpora import default_corpora_root, discover
from training.dataset import build_windows, clip_samples

TARGET_DBFS = -30.0
TRIM_DB = 35.0
TEL_SEED = 7


def prepare(y: np.ndarray) -> np.ndarray:
    import librosa

    t, _ = librosa.effects.trim(y, top_db=TRIM_DB)
    if len(t) < 1600:
        t = y
    rms = float(np.sqrt(np.mean(t.astype(np.float64) ** 2))) + 1e-9
    return (t * (10 ** (TARGET_DBFS / 20) / rms)).astype(np.float32)


def encoder_feats(clips, enc: SpeechEncoder, condition: str) -> tuple[np.ndarray, dict]:
    rows, audio_s, enc_cpu = [], 0.0, 0.0
    for i, c in enumerate(clips):
        y = clip_samples(c.path, 16000)
        sr = 16000
        if condition == "telephone":
            y, sr = telephone(y, 16000, np.random.default_rng(clip_seed(seed_key(c.path), TEL_SEED))), TELEPHONE_SR
        y = prepare(y)
        t0 = time.process_time()
        p = enc.partials(y, sr)
        enc_cpu += time.process_time() - t0
        audio_s += len(y) / sr
        rows.append(np.concatenate([pool_stats(p.embedding), *(pool_stats(p.hidden[:, k]) for k in range(3))]))
        if i % 500 == 0:
            print(f"  {condition} {i}/{len(clips)}", flush=True)
    return np.stack(rows), {"audio_s": audio_s, "encoder_cpu_s": enc_cpu,
                            "cpu_s_per_audio_hour": enc_cpu / audio_s * 3600}


def acoustic_feats(clips, variant: str, cache: Path) -> tuple[np.ndarray, dict]:
    from ser_lib.runtime import Predictor

    fcfg, scfg = FeatureConfig(), SpeechConfig()
    ws = build_windows(clips, fcfg, scfg, 0.5, [variant], seed=TEL_SEED, cache_dir=cache, processes=2,
                       desc=f"probe-{variant}", progress=False)
    lv = level_normalize(ws.x, fcfg)
    feats = np.stack([pool_stats(lv[ws.clip == k].reshape(-1, lv.shape[-1])) for k in range(ws.n_clips)])
    out = {}
    for name, path in (("cnn_final", "models/ser-cnn"), ("cnn_loco", "models/ser-cnn/cv/loco")):
        probs = Predictor.from_path(path, expected=fcfg).predict(ws.x)
        out[name] = np.stack([probs[ws.clip == k].mean(0) for k in range(ws.n_clips)])
    return feats, out


def cnn_fold_probs(clips, cache: Path) -> np.ndarray:
    """Each RAVDESS clip's probabilities from the shipped CV fold model that tested its actor
    (models/ser-cnn/cv/fold-<i>, training/folds.json); NaN for the other corpora."""
    from ser_lib.runtime import Predictor
    from training.cv import FOLDS_PATH, load_folds

    fcfg, scfg = FeatureConfig(), SpeechConfig()
    ws = build_windows(clips, fcfg, scfg, 0.5, ["clean"], seed=TEL_SEED, cache_dir=cache, processes=2,
                       desc="probe-clean", progress=False)
    out = np.full((len(clips), 7), np.nan)
    for i, actors in enumerate(load_folds(FOLDS_PATH)["ravdess"]["test"]):
        pick = [k for k, c in enumerate(clips) if c.corpus == "ravdess" and c.speaker.split(":")[1] in actors]
        m = np.isin(ws.clip, pick)
        probs = Predictor.from_path(f"models/ser-cnn/cv/fold-{i}", expected=fcfg).predict(ws.x[m])
        for k in pick:
            out[k] = probs[ws.clip[m] == k].mean(0)
    return out


def main(cache: str) -> None:
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    clips = [c for c in discover(default_corpora_root()).clips if c.corpus in ("ravdess", "tess", "turev", "emovo")]
    meta = {"clips": [[c.path, c.corpus, c.speaker, c.emotion] for c in clips]}
    onnx = cache / "encoder.onnx"
    if not onnx.is_file():
        from training.encoder_export import export_onnx
        export_onnx(cache)
    which = sys.argv[2:] or ["acoustic", "encoder"]
    if "acoustic" in which:
        for cond, variant in (("wide", "clean"), ("tel", "telephone")):
            t0 = time.time()
            ac, cnn = acoustic_feats(clips, variant, cache / "windows")
            np.savez(cache / f"ac-{cond}.npz", ac=ac, **cnn)
            print(f"acoustic {cond}: {ac.shape} in {time.time() - t0:.0f} s", flush=True)
    if "cnnfolds" in which:
        np.save(cache / "cnn-folds-wide.npy", cnn_fold_probs(clips, cache / "windows"))
    if "encoder" in which:
        enc = SpeechEncoder(onnx, threads=1)
        timing = {}
        for cond in ("wideband", "telephone"):
            load0 = os.getloadavg()
            t0 = time.time()
            x, t = encoder_feats(clips, enc, cond)
            t.update(wall_s=time.time() - t0, loadavg_before=load0, loadavg_after=os.getloadavg())
            timing[cond] = t
            np.save(cache / f"enc-{'tel' if cond == 'telephone' else 'wide'}.npy", x)
            print(f"encoder {cond}: {x.shape}, {t}", flush=True)
        meta["encoder_timing"] = timing
    (cache / f"meta-{'-'.join(which)}.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
