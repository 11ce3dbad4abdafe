"""Clips -> labelled window tensors, through the job's own feature code path.

Every window comes from :func:`ser_lib.features.window_features` on the clip's
samples at the model rate (same window length, zero padding of clips shorter than
a window, last-window rule as the job), and only windows that
:func:`ser_lib.speech.is_speech` flags as speech are kept, since the job gives
non-speech windows no emotion.

**All-silent clips.** When none of a clip's windows is speech (a very quiet
recording, or a short clip mostly padded with zeros), the clip keeps its single
loudest window (highest mean ``rms_db``) instead of being dropped: its label is
known to be correct, dropping it would bias the class balance toward loud
emotions, and one window per clip cannot dominate training. Such clips are
counted (``n_fallback``) in the dataset and the training report.

Multi-channel clips are averaged to mono (the corpora are mono; the job scores
each channel of a call separately).

Variants of a clip: ``"clean"`` (as recorded), ``"aug<k>"`` (the k-th augmented
copy, :func:`training.augment.augment` seeded per clip and copy) and
``"telephone"`` (:func:`training.augment.telephone`, seeded per clip; the degraded
evaluation set).

Extracted windows are cached under ``<repo>/.cache/windows/`` (gitignored), one
``.npz`` per (config, clip list, variant, seed) hash, so reruns skip decoding.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

import ser_lib.audio as _audio_module
import ser_lib.features as _features_module
import ser_lib.speech as _speech_module
import ser_lib.windows as _windows_module
from ser_lib.audio import load, resample
from ser_lib.features import FeatureConfig, window_features
from ser_lib.labels import EMOTIONS, label_index
from ser_lib.speech import RMS_DB_COLUMN, SpeechConfig, is_speech

from . import augment as _augment_module
from .augment import TELEPHONE_SR, AugmentConfig, augment, clip_seed, seed_key, telephone
from .corpora import Clip

#: Default cache folder (the repository's gitignored ``.cache``).
CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "windows"
#: Bump when the extraction below changes what a cache file holds.
CACHE_VERSION = 2


@dataclass
class WindowSet:
    """Windows of a list of clips.

    Attributes:
        x: ``float32 (n_windows, frames_per_window, n_features)`` window features
            (un-normalised, exactly :func:`window_features` rows).
        y: ``int64 (n_windows,)`` label index (order of :data:`ser_lib.labels.EMOTIONS`).
        clip: ``int64 (n_windows,)`` index into the per-clip arrays below.
        start: ``int64 (n_windows,)`` window start, samples at the feature rate.
        clip_id: ``(n_clips,)`` clip ids (the audio path, plus ``#<variant>`` when not clean).
        clip_label: ``int64 (n_clips,)`` label index per clip.
        clip_corpus: ``(n_clips,)`` corpus name per clip.
        clip_fallback: ``bool (n_clips,)`` True where no window was speech and the
            loudest window was kept.
        clip_windows: ``int64 (n_clips,)`` windows before the speech filter.
    """

    x: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    start: np.ndarray
    clip_id: np.ndarray
    clip_label: np.ndarray
    clip_corpus: np.ndarray
    clip_fallback: np.ndarray
    clip_windows: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_clips(self) -> int:
        return len(self.clip_id)

    @property
    def n_fallback(self) -> int:
        return int(self.clip_fallback.sum())

    @property
    def corpus(self) -> np.ndarray:
        """Corpus name per window, ``(n_windows,)``."""
        return self.clip_corpus[self.clip]

    def subset_clips(self, keep: np.ndarray) -> "WindowSet":
        """The windows of the clips where ``keep`` (bool, ``(n_clips,)``) is True, clip indices renumbered."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        w = keep[self.clip]
        return WindowSet(self.x[w], self.y[w], new_index[self.clip[w]], self.start[w], self.clip_id[keep],
                         self.clip_label[keep], self.clip_corpus[keep], self.clip_fallback[keep],
                         self.clip_windows[keep])

    @staticmethod
    def concat(sets: Sequence["WindowSet"]) -> "WindowSet":
        """Concatenate window sets (clip indices offset)."""
        offsets = np.cumsum([0] + [s.n_clips for s in sets[:-1]])
        return WindowSet(
            np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
            np.concatenate([s.clip + o for s, o in zip(sets, offsets)]), np.concatenate([s.start for s in sets]),
            np.concatenate([s.clip_id for s in sets]), np.concatenate([s.clip_label for s in sets]),
            np.concatenate([s.clip_corpus for s in sets]), np.concatenate([s.clip_fallback for s in sets]),
            np.concatenate([s.clip_windows for s in sets]))


def clip_samples(path: str, sample_rate: int) -> np.ndarray:
    """Decode a clip to one float32 channel at ``sample_rate`` (channels averaged).

    Raises:
        ser_lib.errors.AudioError: the file cannot be decoded.
    """
    samples, _ = load(path, sample_rate)
    return samples[0] if samples.shape[0] == 1 else samples.mean(axis=0).astype(np.float32)


def variant_samples(path: str, sample_rate: int, variant: str, aug: AugmentConfig | None, seed: int) -> np.ndarray:
    """The samples of one variant of a clip (see the module docstring), float32 at ``sample_rate``.

    Raises:
        ValueError: unknown variant, or an ``aug<k>`` variant without ``aug``.
    """
    y = clip_samples(path, sample_rate)
    if variant == "clean":
        return y
    if variant == "telephone":
        # Degrade from the rate the features use; the channel itself runs at 8 kHz.
        out = telephone(y, sample_rate, np.random.default_rng(clip_seed(seed_key(path), seed)))
        return resample(out, TELEPHONE_SR, sample_rate)
    if variant.startswith("aug") and variant[3:].isdigit():
        if aug is None:
            raise ValueError("an augmented variant needs an AugmentConfig")
        return augment(y, sample_rate, aug, clip_seed(f"{seed_key(path)}#{variant}", seed))
    raise ValueError(f"unknown variant {variant!r}")


def speech_windows(y: np.ndarray, fcfg: FeatureConfig, scfg: SpeechConfig, hop_s: float):
    """Windows of one channel as the job cuts them, speech windows only.

    Args:
        y: ``float32 (n,)`` at ``fcfg.sample_rate``.

    Returns:
        ``(x, starts, n_total, fallback)``: ``x`` float32 ``(k, frames, features)``
        (k >= 1), ``starts`` int64 ``(k,)`` samples, ``n_total`` windows before
        filtering, ``fallback`` True when no window was speech and the loudest
        (max mean ``rms_db``) was kept.
    """
    feats, starts = window_features(y, fcfg, hop_s)
    mask = is_speech(feats, scfg)
    fallback = not mask.any()
    if fallback:
        mask = np.zeros(len(feats), dtype=bool)
        mask[int(np.argmax(feats[:, :, RMS_DB_COLUMN].mean(axis=1)))] = True
    return np.ascontiguousarray(feats[mask]), starts[mask].astype(np.int64), len(feats), fallback


def _extract(task):
    path, variant, fdict, sdict, hop_s, adict, seed = task
    fcfg, scfg = FeatureConfig.from_dict(fdict), SpeechConfig(**sdict)
    aug = AugmentConfig.from_dict(adict) if adict is not None else None
    y = variant_samples(path, fcfg.sample_rate, variant, aug, seed)
    return speech_windows(y, fcfg, scfg, hop_s)


def cache_key(clips: Sequence[Clip], variants: Sequence[str], fcfg: FeatureConfig, scfg: SpeechConfig,
              hop_s: float, aug: AugmentConfig | None, seed: int) -> str:
    """SHA-256 (hex, 24 chars) of everything that determines the extracted windows:
    cache version, the source of :mod:`training.augment` and of the serving feature
    path (``ser_lib`` audio, features, windows, speech), feature + speech config, hop, variants, augmentation config and seed,
    and each clip's path, label, size and modification time."""
    h = hashlib.sha256()
    # The augmentation code itself is part of the key: changing a filter or a range
    # there must not silently reuse windows made by the old code.
    h.update(Path(_augment_module.__file__).read_bytes())
    # ... and so is the serving feature path: windows must be exactly what the job computes.
    for mod in (_features_module, _speech_module, _windows_module, _audio_module):
        h.update(Path(mod.__file__).read_bytes())
    h.update(json.dumps({
        "v": CACHE_VERSION, "f": fcfg.to_dict(), "s": vars(scfg), "hop": hop_s, "variants": list(variants),
        "aug": aug.to_dict() if aug is not None and any(v.startswith("aug") for v in variants) else None,
        "seed": seed,
    }, sort_keys=True).encode())
    for c in clips:
        st = os.stat(c.path)
        h.update(f"{c.path}|{c.emotion}|{c.corpus}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def build_windows(clips: Sequence[Clip], fcfg: FeatureConfig, scfg: SpeechConfig, hop_s: float,
                  variants: Sequence[str] = ("clean",), aug: AugmentConfig | None = None, seed: int = 0,
                  cache_dir: str | os.PathLike | None = CACHE_DIR, processes: int = 2,
                  desc: str = "windows", progress: bool = True) -> WindowSet:
    """Extract the speech windows of every (clip, variant) pair.

    Args:
        clips: labelled clips (:class:`training.corpora.Clip`).
        fcfg, scfg: feature and speech configuration (the artifact's).
        hop_s: hop between training windows, seconds (a multiple of the frame hop).
        variants: ``"clean"``, ``"aug<k>"``, ``"telephone"``; each clip is extracted
            once per variant (clip-major order: all variants of clip 0, then clip 1 ...).
        aug: augmentation config, needed for ``aug<k>`` variants.
        seed: seed of the augmentation / telephone draws.
        cache_dir: cache folder, or None to disable the cache.
        processes: worker processes (``spawn``; 1 = in-process).
        desc: progress-bar label.

    Returns:
        a :class:`WindowSet`.

    Raises:
        ValueError: empty clip list, or a clip whose emotion is not a product label.
        ser_lib.errors.AudioError: a clip cannot be decoded.
    """
    if not clips:
        raise ValueError("no clips to extract")
    for c in clips:
        label_index(c.emotion)
    cache_file = None
    if cache_dir is not None:
        key = cache_key(clips, variants, fcfg, scfg, hop_s, aug, seed)
        cache_file = Path(cache_dir) / f"{desc.replace(' ', '_')}-{key}.npz"
        if cache_file.is_file():
            with np.load(cache_file, allow_pickle=False) as z:
                return WindowSet(**{k: z[k] for k in z.files})

    tasks = [(c.path, v, fcfg.to_dict(), vars(scfg), hop_s, aug.to_dict() if aug else None, seed)
             for c in clips for v in variants]
    owners = [(c, v) for c in clips for v in variants]
    from tqdm import tqdm

    bar = dict(total=len(tasks), desc=desc, unit="clip", disable=not progress, mininterval=2.0)
    if processes > 1 and len(tasks) >= 50:
        # spawn, not fork: the parent may already hold TensorFlow's thread pools.
        with mp.get_context("spawn").Pool(processes) as pool:
            results = list(tqdm(pool.imap(_extract, tasks, chunksize=8), **bar))
    else:
        results = [_extract(t) for t in tqdm(tasks, **bar)]

    xs, clip_idx, starts = [], [], []
    for i, (x, st, _, _) in enumerate(results):
        xs.append(x)
        starts.append(st)
        clip_idx.append(np.full(len(x), i, dtype=np.int64))
    clip_label = np.array([label_index(c.emotion) for c, _ in owners], dtype=np.int64)
    clip_idx = np.concatenate(clip_idx)
    ws = WindowSet(
        x=np.concatenate(xs).astype(np.float32, copy=False), y=clip_label[clip_idx], clip=clip_idx,
        start=np.concatenate(starts),
        clip_id=np.array([c.path if v == "clean" else f"{c.path}#{v}" for c, v in owners]),
        clip_label=clip_label, clip_corpus=np.array([c.corpus for c, _ in owners]),
        clip_fallback=np.array([r[3] for r in results], dtype=bool),
        clip_windows=np.array([r[2] for r in results], dtype=np.int64),
    )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, **vars(ws))
        os.replace(tmp, cache_file)
    return ws


def class_weights(y: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict[int, float]:
    """Balanced class weights ``n / (k * count_c)`` (sklearn's "balanced" rule), over
    the classes present; absent classes get weight 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w[i]) for i in range(n_classes)}


def norm_stats(x: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over all frames of all windows.

    Args:
        x: ``float32 (n, frames, features)`` (training windows only).

    Returns:
        ``(mean, std)``, float32 ``(features,)``; std is floored at 1e-3 so constant
        features (e.g. chroma of silence) do not blow up.
    """
    n_feat = x.shape[-1]
    s = np.zeros(n_feat)
    ss = np.zeros(n_feat)
    count = 0
    for i in range(0, len(x), chunk):
        b = x[i:i + chunk].reshape(-1, n_feat).astype(np.float64)
        s += b.sum(0)
        ss += (b * b).sum(0)
        count += len(b)
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)
