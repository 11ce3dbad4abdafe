"""Train the emotion head on the frozen speech encoder and write an encoder-head artifact
(:mod:`ser_lib.encoder_head`): ``encoder.onnx`` (exported from the installed resemblyzer
package), ``ENCODER_LICENSE.txt`` and ``encoder_head.json``.

The recipe is the best configuration of ``models/runs/2026-12-07-encoder`` (chosen on the
held-out corpora, so its numbers there are optimistic): per clip, the last LSTM layer's state
mean+std pooled over the clip's partials (:func:`ser_lib.encoder_head.segment_features`, the
code serving runs), standardised per speaker, then a multinomial logistic regression
(scikit-learn, C = 0.003, lbfgs) with every (corpus, emotion) pair given the same total weight.
The clips are encoded as the job hears them: at its 8 kHz model rate and through a G.711
telephone channel (:data:`CONDITIONS`; models/runs/2026-12-07-accurate chose this over wideband).
The fusion with the CNN is the weighted geometric mean (:data:`FUSION`), its temperature fitted
(:func:`fit_fusion_temperature`) on RAVDESS actor cross-validation *window* predictions that
neither model saw in training (:func:`ravdess_cv_predictions`: each actor's clips streamed as
one call channel, the CNN's fold models ``<CNN>/cv/fold-<i>`` and heads fitted without the
fold's actors).
Needs the ``[train]`` install.

Usage: ``python -m training.encoder_head OUT_DIR [CORPUS_ROOT ...]`` (default root:
``$SER_CORPORA`` or ``../shared/corpora``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.encoder import ENCODER_FILE, SpeechEncoder
from ser_lib.encoder_head import (HEAD_FILE, EncoderHead, SegmentSettings, fuse, segment_features,
                                  speaker_standardize)
from ser_lib.labels import EMOTIONS

from .corpora import Clip, default_corpora_root, discover
from .dataset import clip_samples
from .fit import group_weights  # every (corpus, emotion) pair the same total weight, as the CNN recipe

#: Logistic-regression regularisation (models/runs/2026-12-07-encoder: chosen by
#: leave-one-training-corpus-out UA, 0.003 in every protocol of the main configuration).
C = 0.003


#: Audio conditions of the shipped head's training clips (models/runs/2026-12-07-accurate):
#: ``8k``: the clip as the job decodes it (resampled to the model rate, 8 kHz, soxr HQ, as
#: :class:`ser_lib.stream.StreamAnalyzer` does), and ``telephone``: the clip through a G.711
#: channel (:func:`training.augment.telephone`, 8 kHz). ``wideband`` (16 kHz) is the probe's.
CONDITIONS = ("8k", "telephone")
#: seed of the telephone draws (law, level) per clip: the encoder probe's
TELEPHONE_SEED = 7


def clip_audio(clip: Clip, condition: str, model_rate: int = 8000) -> tuple[np.ndarray, int]:
    """One clip's mono samples in ``condition`` (:data:`CONDITIONS` or ``wideband``):
    ``(float32 (n,), sample_rate)``.

    Raises:
        ValueError: unknown condition.
    """
    from .augment import clip_seed, seed_key, telephone

    if condition == "wideband":
        return clip_samples(clip.path, 16000), 16000
    if condition == "8k":
        return clip_samples(clip.path, model_rate), model_rate
    if condition == "telephone":
        rng = np.random.default_rng(clip_seed(seed_key(clip.path), TELEPHONE_SEED))
        return telephone(clip_samples(clip.path, 16000), 16000, rng), 8000
    raise ValueError(f"unknown condition {condition!r}; expected 8k, telephone or wideband")


def clip_features(clips: Sequence[Clip], encoder: SpeechEncoder, settings: SegmentSettings,
                  progress: bool = False, condition: str = "8k", model_rate: int = 8000) -> np.ndarray:
    """:func:`ser_lib.encoder_head.segment_features` (the function serving applies to each
    speech window's samples) of every clip in ``condition`` (:func:`clip_audio`), ``(n, 512)``."""
    rows = []
    for i, c in enumerate(clips):
        y, sr = clip_audio(c, condition, model_rate)
        rows.append(segment_features(encoder, y, sr, settings))
        if progress and i % 500 == 0:
            print(f"  encoder features ({condition}) {i}/{len(clips)}", flush=True)
    return np.stack(rows)


def standardize_by_speaker(x: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
    """:func:`ser_lib.encoder_head.speaker_standardize` applied to each speaker's rows."""
    speakers = np.asarray(speakers)
    out = np.empty_like(x, dtype=np.float32)
    for s in np.unique(speakers):
        m = speakers == s
        out[m] = speaker_standardize(x[m])
    return out


def fit_head(x: np.ndarray, y: np.ndarray, groups: Sequence[str], c: float = C,
             settings: SegmentSettings | None = None, training: dict | None = None) -> EncoderHead:
    """Fit the global standardisation and the logistic regression on speaker-standardised rows.

    Args:
        x: float ``(n, d)``; y: int ``(n,)`` indices into :data:`ser_lib.labels.EMOTIONS`;
        groups: the corpus of each row (for the balancing weights).

    Returns:
        the :class:`ser_lib.encoder_head.EncoderHead` (classes absent from ``y`` get a
        -1e9 intercept: never predicted).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(x), y, sample_weight=group_weights(groups, y))
    coef = np.zeros((len(EMOTIONS), x.shape[1]))
    intercept = np.full(len(EMOTIONS), -1e9)
    coef[lr.classes_] = lr.coef_
    intercept[lr.classes_] = lr.intercept_
    return EncoderHead(list(EMOTIONS), sc.mean_.copy(), sc.scale_.copy(), coef, intercept,
                       settings=settings or SegmentSettings(), speaker_norm=True,
                       training={"C": c, "n_train": int(len(y)), **(training or {})})


#: fusion rule of the shipped head (:func:`ser_lib.encoder_head.fuse`): the geometric mean, chosen
#: over the arithmetic mean by models/runs/2026-12-07-accurate/calibrate.py (higher UA on RAVDESS
#: actor CV and TurEV-DB, and temperature scaling then meets ECE <= 0.05 on RAVDESS actor CV)
FUSION = "log"
#: the CNN's weight in the fusion (fixed before it was measured)
CNN_WEIGHT = 0.5
#: the CNN artifact whose cross-validation fold models (``cv/fold-<i>``) calibrate the fusion
DEFAULT_CNN = Path(__file__).resolve().parents[1] / "models" / "ser-cnn"


def fit_fusion_temperature(cnn_probs: np.ndarray, head_probs: np.ndarray, y: np.ndarray,
                           cnn_weight: float = CNN_WEIGHT, fusion: str = FUSION) -> float:
    """The temperature of :func:`ser_lib.encoder_head.fuse` that minimises the negative
    log-likelihood of ``y`` (:func:`training.evaluate.fit_temperature` on the fused, unscaled
    probabilities; Guo et al. 2017). Fit it on predictions neither model was trained on.

    Args:
        cnn_probs, head_probs: float ``(n, k)``; y: int ``(n,)`` true labels.

    Returns:
        ``T > 0`` (1.0 for no rows).
    """
    from .evaluate import fit_temperature

    return fit_temperature(fuse(cnn_probs, head_probs, cnn_weight, fusion, 1.0), y)


#: silence between a speaker's clips when they are joined into one call channel (s)
CALL_GAP_S = 0.3


def speaker_call_windows(clips: Sequence[Clip], encoder: SpeechEncoder, settings: SegmentSettings,
                         model_rate: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One speaker's clips as one call channel, scored the way the job scores a call: the
    clips at the job's model rate joined by :data:`CALL_GAP_S` of silence, streamed through
    :class:`ser_lib.stream.StreamAnalyzer` (the configuration's windows and speech rule), each
    speech window encoded as serving encodes it (:func:`ser_lib.encoder_head.segments_features`)
    and labelled with the emotion of the clip covering most of it.

    Returns:
        ``(cnn_features (m, ...) float32, encoder rows (m, 512) float32, labels (m,) int)``
        over the m speech windows that overlap a clip (indices into
        :data:`ser_lib.labels.EMOTIONS`).
    """
    import tempfile

    import soundfile as sf

    from ser_lib.config import JobConfig
    from ser_lib.encoder_head import segments_features
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    from ser_lib.stream import StreamAnalyzer

    fcfg = FeatureConfig()
    cfg = JobConfig.load()
    gap = np.zeros(int(CALL_GAP_S * model_rate), np.float32)
    ys, owner = [], []
    for k, c in enumerate(clips):
        y = clip_samples(c.path, model_rate)
        ys += [y, gap]
        owner += [np.full(len(y), k), np.full(len(gap), -1)]
    audio, owner = np.concatenate(ys), np.concatenate(owner)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "call.wav"
        sf.write(path, audio, model_rate, subtype="FLOAT")
        chans = [ch for chunk in StreamAnalyzer(path, fcfg, cfg.hop_s, SpeechConfig(), lambda n: ("mono",), 60.0,
                                                keep_audio=True) for ch in chunk]
    feats = np.concatenate([w.features[w.speech] for w in chans])
    segs = [a for w in chans for a, sp in zip(w.audio, w.speech) if sp]
    start = np.concatenate([w.start_s[w.speech] for w in chans])
    end = np.concatenate([w.end_s[w.speech] for w in chans])
    lab = []
    for a, b in zip(start, end):
        o = owner[round(a * model_rate):round(b * model_rate)]
        o = o[o >= 0]
        lab.append(EMOTIONS.index(clips[np.bincount(o).argmax()].emotion) if len(o) else -1)
    lab = np.array(lab, int)
    keep = lab >= 0
    rows = segments_features(encoder, segs, model_rate, settings)
    return feats[keep], rows[keep], lab[keep]


def ravdess_cv_predictions(clips: Sequence[Clip], x: np.ndarray, cnn_root: str | os.PathLike,
                           encoder: SpeechEncoder, settings: SegmentSettings, folds_path: str | os.PathLike | None = None,
                           c: float = C, model_rate: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold *window* predictions of both models on RAVDESS (the actor folds of
    ``training/folds.json``), as served: each test actor's clips as one call channel
    (:func:`speaker_call_windows`), its speech windows scored by the CNN fold model
    ``<cnn_root>/cv/fold-<i>`` (:class:`ser_lib.runtime.Predictor`) and by a head
    (:func:`fit_head`) fitted on every clip row except the fold's actors', the channel's
    encoder rows standardised together (:meth:`ser_lib.encoder_head.EncoderHead.predict_speaker`).
    Window level because serving fuses windows: a clip's mean probability is flatter than its
    windows' (models/runs/2026-12-07-accurate/README.md, calibration).

    Args:
        clips: the ``n`` clips; x: ``(n_conditions * n, d)`` speaker-standardised clip rows,
            condition-major (as :func:`build` stacks them).

    Returns:
        ``(cnn_probs (m, k), head_probs (m, k), y (m,))`` over the m windows tested (``m = 0``
        when no fold has clips here and training rows of 2+ emotions besides).
    """
    from ser_lib.features import FeatureConfig
    from ser_lib.runtime import Predictor

    from .cv import FOLDS_PATH, load_folds

    n = len(clips)
    reps = len(x) // n
    y = np.array([EMOTIONS.index(c.emotion) for c in clips])
    corpus = np.array([c.corpus for c in clips])
    speaker = np.array([c.speaker for c in clips])
    cnn_p, head_p, ys = [], [], []
    for i, actors in enumerate(load_folds(folds_path or FOLDS_PATH)["ravdess"]["test"]):
        spks = [f"ravdess:{a}" for a in actors]
        te = (corpus == "ravdess") & np.isin(speaker, spks)
        if not te.any() or len(np.unique(y[~te])) < 2:
            continue
        tr = np.tile(~te, reps)
        head = fit_head(x[tr], np.tile(y, reps)[tr], np.tile(corpus, reps)[tr], c, settings=settings)
        cnn = Predictor.from_path(Path(cnn_root) / "cv" / f"fold-{i}", expected=FeatureConfig())
        for s in spks:
            own = [clips[k] for k in np.flatnonzero(speaker == s)]
            if not own:
                continue
            feats, rows, lab = speaker_call_windows(own, encoder, settings, model_rate)
            if len(lab) < 2:   # serving keeps the CNN's probabilities alone below 2 windows
                continue
            cnn_p.append(cnn.predict(feats))
            head_p.append(head.predict_speaker(rows))
            ys.append(lab)
    if not ys:
        k = len(EMOTIONS)
        return np.zeros((0, k)), np.zeros((0, k)), np.zeros(0, int)
    return np.concatenate(cnn_p), np.concatenate(head_p), np.concatenate(ys)


def build(out: str | os.PathLike, roots: Sequence[str | os.PathLike], progress: bool = True,
          conditions: Sequence[str] = CONDITIONS, cnn: str | os.PathLike = DEFAULT_CNN) -> Path:
    """Export the encoder, extract every clip's features in each of ``conditions`` (each
    condition's rows standardised per speaker on their own), fit the head on all of them,
    fit the fusion temperature on RAVDESS actor-CV window predictions
    (:func:`ravdess_cv_predictions` with the CNN artifact ``cnn``'s fold models; 1.0, recorded
    as not fitted, without RAVDESS clips to test), write the artifact.

    Returns:
        the artifact folder.

    Raises:
        ValueError: no corpus clips under ``roots``.
        ImportError: the ``[train]`` install is missing (torch, resemblyzer, scikit-learn).
    """
    import datetime as dt

    from ser_lib.features import FeatureConfig

    from .encoder_export import export_onnx

    out = Path(out)
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    export_onnx(out)
    settings = SegmentSettings()
    encoder = SpeechEncoder(out / ENCODER_FILE)
    model_rate = FeatureConfig().sample_rate
    speakers = [c.speaker for c in found.clips]
    x = np.vstack([standardize_by_speaker(clip_features(found.clips, encoder, settings, progress, cond, model_rate),
                                          speakers) for cond in conditions])
    y = np.tile([EMOTIONS.index(c.emotion) for c in found.clips], len(conditions))
    corpus = np.tile([c.corpus for c in found.clips], len(conditions))
    corpora = sorted({c.corpus for c in found.clips})
    version = "enchead-" + dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d.%H%M")
    head = fit_head(x, y, corpus, settings=settings,
                    training={"version": version, "recipe": "python -m training.encoder_head", "corpora": corpora,
                              "n_clips": len(found.clips), "conditions": list(conditions),
                              "model_rate_hz": model_rate, "telephone_seed": TELEPHONE_SEED,
                              "probe": "models/runs/2026-12-07-encoder", "runs": "models/runs/2026-12-07-accurate"})
    if progress:
        print("  fusion temperature: RAVDESS actor cross-validation", flush=True)
    cnn_p, head_p, y_cv = ravdess_cv_predictions(found.clips, x, cnn, encoder, settings, model_rate=model_rate)
    head.cnn_weight, head.fusion = CNN_WEIGHT, FUSION
    head.temperature = fit_fusion_temperature(cnn_p, head_p, y_cv) if len(y_cv) else 1.0
    head.training["calibration"] = {
        "method": "temperature scaling (Guo et al. 2017) of the fused probabilities, NLL-fitted",
        "data": f"RAVDESS actor CV out-of-fold window predictions, each actor's clips as one call channel "
                f"(training/folds.json; CNN {Path(cnn).name}/cv/fold-<i>, heads fitted without the fold's actors)"
                if len(y_cv) else "none (no RAVDESS fold to test)",
        "n_windows": int(len(y_cv))}
    (out / HEAD_FILE).write_text(head.to_json())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m training.encoder_head OUT_DIR [CORPUS_ROOT ...]", file=sys.stderr)
        return 2
    print(build(argv[0], argv[1:] or [default_corpora_root()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
