"""Train the emotion head on the frozen speech encoder and write an encoder-head artifact
(:mod:`ser_lib.encoder_head`): ``encoder.onnx`` (exported from the installed resemblyzer
package) and its int8 build ``encoder-int8.onnx``, ``ENCODER_LICENSE.txt`` and ``encoder_head.json``.

The recipe is the best configuration of ``models/runs/2026-12-07-encoder`` (chosen on the
held-out corpora, so its numbers there are optimistic): per clip, the last LSTM layer's state
mean+std pooled over the clip's partials (:func:`ser_lib.encoder_head.segment_features`, the
code serving runs), standardised per speaker, then a multinomial logistic regression
(scikit-learn, C = 0.003, lbfgs) with every (corpus, emotion) pair given the same total weight;
beside it the same regression on the rows with the training speakers' subspace projected out,
for channels too short to standardise by (:func:`fit_heads`; models/runs/2026-12-07-short-channels).
The clips are encoded as the job hears them: at its 8 kHz model rate and through a G.711
telephone channel (:data:`CONDITIONS`; models/runs/2026-12-07-accurate chose this over wideband).
The fusion with the CNN is the weighted geometric mean (:data:`FUSION`), its temperature fitted
(:func:`fit_fusion_temperature`) on *window* predictions on the corpora that neither model
trained on (:func:`held_out_predictions`: TurEV-DB with the CNN's leave-one-corpus-out model,
EMOVO with the shipped CNN, heads fitted without the corpus), because the product scores
voices it never heard.
Needs the ``[train]`` install.

Usage: ``python -m training.encoder_head OUT_DIR [CORPUS_ROOT ...]`` (default root:
``$SER_CORPORA`` or ``../shared/corpora``).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.artifact import load_meta
from ser_lib.encoder import ENCODER_FILE, SpeechEncoder
from ser_lib.encoder_head import (HEAD_FILE, EncoderHead, SegmentSettings, ShortChannelHead, fuse,
                                  segment_features, speaker_standardize)
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


def standardize_conditions(raw: np.ndarray, speakers: Sequence[str], reps: int) -> np.ndarray:
    """:func:`standardize_by_speaker` of each condition's rows on their own: ``raw`` holds
    ``reps`` conditions of the ``len(speakers)`` clips, condition-major (as :func:`build`
    stacks them); ``(reps * n, d)`` float32 out."""
    n = len(speakers)
    return np.vstack([standardize_by_speaker(raw[i * n:(i + 1) * n], speakers) for i in range(reps)])


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


#: ``k`` of the short-channel mix (:meth:`ser_lib.encoder_head.EncoderHead.predict_channel`):
#: models/runs/2026-12-07-short-channels, clips scored alone and speakers streamed as calls,
#: 3, 10 and 30 within 0.02 of each other everywhere
PRIOR_WINDOWS = 10.0


def speaker_basis(x: np.ndarray, speakers: Sequence[str], tol: float = 1e-6) -> np.ndarray:
    """Orthonormal basis of the speakers' mean rows, centred: ``(m, d)`` float64 with ``m`` <
    number of speakers (directions with a singular value under ``tol`` times the largest
    dropped). The subspace :class:`ser_lib.encoder_head.ShortChannelHead` projects out.

    Raises:
        ValueError: fewer than 2 speakers.
    """
    speakers = np.asarray(speakers)
    names = np.unique(speakers)
    if len(names) < 2:
        raise ValueError(f"speaker_basis needs rows of 2 or more speakers, got {len(names)}")
    means = np.stack([np.asarray(x[speakers == s], np.float64).mean(0) for s in names])
    _, sv, vt = np.linalg.svd(means - means.mean(0), full_matrices=False)
    return vt[sv > tol * sv[0]]


def fit_short_head(raw: np.ndarray, y: np.ndarray, groups: Sequence[str], basis: np.ndarray,
                   c: float = C, prior_windows: float = PRIOR_WINDOWS) -> ShortChannelHead:
    """Fit the short-channel head: the :func:`fit_head` recipe (standardisation, logistic
    regression, balanced weights) on raw rows with ``basis`` projected out."""
    short = ShortChannelHead(basis, np.zeros(raw.shape[1]), np.ones(raw.shape[1]),
                             np.zeros((len(EMOTIONS), raw.shape[1])), np.zeros(len(EMOTIONS)), prior_windows)
    lin = fit_head(short.project(raw), y, groups, c)
    short.mean, short.scale, short.coef, short.intercept = lin.mean, lin.scale, lin.coef, lin.intercept
    return short


def fit_heads(raw: np.ndarray, y: np.ndarray, groups: Sequence[str], speakers: Sequence[str], reps: int = 1,
              c: float = C, settings: SegmentSettings | None = None, training: dict | None = None) -> EncoderHead:
    """The shipped head: :func:`fit_head` on the rows standardised per speaker (each
    condition's rows on their own) and its :func:`fit_short_head` on the raw rows, the speaker
    basis from the first condition's rows.

    Args:
        raw: float ``(reps * n, d)`` raw clip rows, condition-major; y, groups: ``(reps * n,)``;
            speakers: the ``n`` clips' speakers.
    """
    n = len(speakers)
    if len(raw) != reps * n:
        raise ValueError(f"{len(raw)} rows for {reps} conditions of {n} clips")
    head = fit_head(standardize_conditions(raw, speakers, reps), y, groups, c, settings=settings, training=training)
    head.short = fit_short_head(raw, y, groups, speaker_basis(raw[:n], speakers), c)
    return head


#: fusion rule of the shipped head (:func:`ser_lib.encoder_head.fuse`): the geometric mean, chosen
#: over the arithmetic mean by models/runs/2026-12-07-accurate/calibrate.py (higher UA on RAVDESS
#: actor CV and TurEV-DB, and temperature scaling then meets ECE <= 0.05 on RAVDESS actor CV)
FUSION = "log"
#: the weight of the CNN's *uncalibrated* log-probabilities in the fusion, against the head's
#: (fixed before it was measured; chosen on one unheard corpus and tested on the other, 0.4-0.5 comes
#: out: models/runs/2026-12-07-fusion-weight); :func:`fusion_weight` turns it into the weight on the CNN's
#: calibrated output that the artifact stores
CNN_WEIGHT = 0.5
#: speech windows each served window's encoder row is pooled over (``SegmentSettings.context_windows``:
#: the window and its two neighbours in a run of speech). Measured with each unheard corpus's speakers
#: streamed as calls, the head fitted without it (models/runs/2026-12-07-encoder-lite, window level,
#: clips in random order): EMOVO UA4 +0.030, UA7 +0.025, arousal AUC +0.011; RAVDESS actor CV UA4
#: +0.059; TurEV-DB, one word per clip, so every window straddles words of other emotions, -0.020.
#: Clips scored alone: within 0.006
CONTEXT_WINDOWS = 3
#: seed of the random clip order of :func:`held_out_predictions`' second call per speaker
CALL_ORDER_SEED = 7
#: the CNN artifact whose cross-validation fold models (``cv/fold-<i>``) calibrate the fusion
DEFAULT_CNN = Path(__file__).resolve().parents[1] / "models" / "ser-cnn"


def fusion_weight(cnn_temperature: float, weight: float = CNN_WEIGHT) -> float:
    """The ``cnn_weight`` of :func:`ser_lib.encoder_head.fuse` (applied to the CNN's
    temperature-scaled probabilities, as the job has them) that gives the CNN's unscaled
    log-probabilities the weight ``weight`` against the head's ``1 - weight``:
    ``w' = w T / (w T + 1 - w)`` for CNN temperature ``T``, since
    ``log softmax(z / T) = z / T + const``. So the CNN's own calibration does not move the
    balance of the fusion (a CNN sharpened by T < 1 would otherwise weigh more); the fusion's
    temperature then calibrates the fused output (models/runs/2026-12-07-distilled-default).

    Args:
        cnn_temperature: the CNN artifact's temperature, ``T > 0``; weight: in [0, 1].

    Returns:
        the weight in [0, 1] (``weight`` itself when ``T`` is 1).

    Raises:
        ValueError: ``T <= 0`` or ``weight`` outside [0, 1].
    """
    if not cnn_temperature > 0 or not 0.0 <= weight <= 1.0:
        raise ValueError(f"need a temperature > 0 and a weight in [0, 1], got {cnn_temperature}, {weight}")
    return weight * cnn_temperature / (weight * cnn_temperature + 1.0 - weight)


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


def speaker_call_audio(clips: Sequence[Clip], model_rate: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """One speaker's clips as one call channel's audio: each clip at ``model_rate`` (Hz),
    followed by :data:`CALL_GAP_S` of silence.

    Returns:
        ``(audio float32 (n,), owner int (n,))``: the samples and, per sample, the index into
        ``clips`` of the clip it belongs to (-1 in the gaps).
    """
    gap = np.zeros(int(CALL_GAP_S * model_rate), np.float32)
    ys, owner = [], []
    for k, c in enumerate(clips):
        y = clip_samples(c.path, model_rate)
        ys += [y, gap]
        owner += [np.full(len(y), k), np.full(len(gap), -1)]
    return np.concatenate(ys), np.concatenate(owner)


@dataclass
class CallStream:
    """The speech windows of one speaker's clips streamed as one call channel
    (:func:`speaker_call_stream`), in time order.

    Attributes:
        features: float32 ``(m, frames, n_features)``, the CNN's input per window.
        segments: ``m`` float32 arrays, each window's samples at the model rate.
        start_s, end_s: float ``(m,)``, seconds into the channel.
        labels: int ``(m,)``, index into :data:`ser_lib.labels.EMOTIONS` of the clip covering
            most of the window; -1 for a window over a gap only.
        hop_s: the hop the windows were cut at, seconds (the job configuration's).
    """

    features: np.ndarray
    segments: list
    start_s: np.ndarray
    end_s: np.ndarray
    labels: np.ndarray
    hop_s: float


def speaker_call_stream(clips: Sequence[Clip], model_rate: int = 8000) -> CallStream:
    """One speaker's clips as one call channel, windowed the way the job windows a call: the
    clips at the job's model rate joined by :data:`CALL_GAP_S` of silence
    (:func:`speaker_call_audio`), streamed through :class:`ser_lib.stream.StreamAnalyzer` (the
    configuration's windows and speech rule); its speech windows, each labelled with the
    emotion of the clip covering most of it."""
    import tempfile

    import soundfile as sf

    from ser_lib.config import JobConfig
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    from ser_lib.stream import StreamAnalyzer

    cfg = JobConfig.load()
    audio, owner = speaker_call_audio(clips, model_rate)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "call.wav"
        sf.write(path, audio, model_rate, subtype="FLOAT")
        chans = [ch for chunk in StreamAnalyzer(path, FeatureConfig(), cfg.hop_s, SpeechConfig(), lambda n: ("mono",),
                                                60.0, keep_audio=True) for ch in chunk]
    start = np.concatenate([w.start_s[w.speech] for w in chans])
    end = np.concatenate([w.end_s[w.speech] for w in chans])
    lab = []
    for a, b in zip(start, end):
        o = owner[round(a * model_rate):round(b * model_rate)]
        o = o[o >= 0]
        lab.append(EMOTIONS.index(clips[np.bincount(o).argmax()].emotion) if len(o) else -1)
    return CallStream(np.concatenate([w.features[w.speech] for w in chans]),
                      [a for w in chans for a, sp in zip(w.audio, w.speech) if sp], start, end, np.array(lab, int),
                      cfg.hop_s)


def speaker_call_windows(clips: Sequence[Clip], encoder: SpeechEncoder, settings: SegmentSettings,
                         model_rate: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One speaker's clips as one call channel, scored the way the job scores a call
    (:func:`speaker_call_stream`): each speech window encoded as serving encodes it
    (:func:`ser_lib.encoder_head.segments_features`, pooled over ``settings.context_windows``
    as :meth:`~ser_lib.encoder_head.EncoderModel.predict_features` pools them).

    Returns:
        ``(cnn_features (m, ...) float32, encoder rows (m, 512) float32, labels (m,) int)``
        over the m speech windows that overlap a clip (indices into
        :data:`ser_lib.labels.EMOTIONS`).
    """
    from ser_lib.encoder_head import pool_context, segments_features

    st = speaker_call_stream(clips, model_rate)
    keep = st.labels >= 0
    rows = pool_context(segments_features(encoder, st.segments, model_rate, settings), st.start_s, st.hop_s,
                        settings.context_windows)
    return st.features[keep], rows[keep], st.labels[keep]


def unheard_cnn(cnn_root: str | os.PathLike, corpus: str) -> Path | None:
    """A CNN artifact of the recipe that never trained on ``corpus``: the artifact itself when
    its training corpora (``artifact.json`` ``training.corpora``) lack it, else its
    leave-one-corpus-out model ``<cnn_root>/cv/<run>`` that left it out
    (:func:`training.cv.loco_runs`), else ``None``."""
    from .cv import FOLDS_PATH, load_folds, loco_runs

    root = Path(cnn_root)
    trained = json.loads((root / "artifact.json").read_text()).get("training", {}).get("corpora", {})
    if corpus not in trained:
        return root
    for run, left_out in loco_runs(load_folds(FOLDS_PATH)).items():
        if left_out == corpus and (root / "cv" / run / "artifact.json").is_file():
            return root / "cv" / run
    return None


def unheard_predictor(cnn_root: str | os.PathLike, cnn_path: str | os.PathLike):
    """The :class:`ser_lib.runtime.Predictor` of ``cnn_path`` (an :func:`unheard_cnn` of
    ``cnn_root``) at the temperature of the CNN served, ``cnn_root``'s: a leave-one-corpus-out
    model keeps the folds' validation temperature (:func:`training.cv.recalibrate`), but the
    fusion weight is the served CNN's (:func:`fusion_weight`), so its probabilities must be on
    the served scale."""
    from ser_lib.features import FeatureConfig
    from ser_lib.runtime import Predictor

    cnn = Predictor.from_path(cnn_path, expected=FeatureConfig())
    cnn.meta.temperature = load_meta(cnn_root).temperature
    return cnn


def held_out_predictions(clips: Sequence[Clip], raw: np.ndarray, cnn_root: str | os.PathLike,
                         encoder: SpeechEncoder, settings: SegmentSettings, c: float = C,
                         model_rate: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """*Window* predictions of both models on each corpus neither was trained on, as served:
    for every corpus with an :func:`unheard_cnn`, heads fitted without it (:func:`fit_heads`),
    each of its speakers' clips streamed as one call channel twice, in the corpus's order and
    in a seeded random one (:data:`CALL_ORDER_SEED`), and each clip alone as a channel of its own
    (:func:`speaker_call_windows`; the two ends of what a channel holds), scored by
    that CNN at the temperature of the CNN served (``cnn_root``'s, whose fusion weight
    :func:`build` stores) and by :meth:`ser_lib.encoder_head.EncoderHead.predict_channel`.

    The temperature fitted on these (:func:`build`) is the one unheard voices need:
    models/runs/2026-12-07-short-channels/temperature.py fitted it on TurEV-DB and tested it
    on EMOVO and the reverse (window ECE 0.018-0.042, against 0.10-0.14 with a temperature
    fitted on the training corpus's own held-out speakers). The corpora list a speaker's clips
    emotion by emotion, so in their order neighbouring windows (pooled by
    ``settings.context_windows``) nearly always share an emotion: the easy case, which alone
    left windows of clips in random order over-confident (models/runs/2026-12-07-encoder-lite);
    calls lie between the two orders.

    Args:
        clips: the ``n`` clips; raw: ``(n_conditions * n, d)`` raw clip rows, condition-major
            (as :func:`build` stacks them).

    Returns:
        ``(cnn_probs (m, k), head_probs (m, k), y (m,), {corpus: [CNN used, windows]})`` over
        the m windows (``m = 0`` when no corpus qualifies).
    """
    n = len(clips)
    reps = len(raw) // n
    y = np.array([EMOTIONS.index(c.emotion) for c in clips])
    corpus = np.array([c.corpus for c in clips])
    speaker = np.array([c.speaker for c in clips])
    cnn_p, head_p, ys, used = [], [], [], {}
    for name in sorted(set(corpus)):
        te = corpus == name
        cnn_path = unheard_cnn(cnn_root, name)
        if cnn_path is None or len(np.unique(y[~te])) < 2 or len(np.unique(speaker[~te])) < 2:
            continue
        tr = np.tile(~te, reps)
        head = fit_heads(raw[tr], np.tile(y, reps)[tr], np.tile(corpus, reps)[tr], speaker[~te], reps, c,
                         settings=settings)
        cnn = unheard_predictor(cnn_root, cnn_path)
        before = sum(map(len, ys))
        for s in sorted(set(speaker[te])):
            own = [clips[k] for k in np.flatnonzero(speaker == s)]
            shuffled = [own[k] for k in np.random.default_rng(CALL_ORDER_SEED).permutation(len(own))]
            for channel in [own, shuffled] + [[clip] for clip in own]:
                feats, rows, lab = speaker_call_windows(channel, encoder, settings, model_rate)
                if len(lab):
                    cnn_p.append(cnn.predict(feats))
                    head_p.append(head.predict_channel(rows))
                    ys.append(lab)
        used[name] = [str(cnn_path), sum(map(len, ys)) - before]
    if not ys:
        k = len(EMOTIONS)
        return np.zeros((0, k)), np.zeros((0, k)), np.zeros(0, int), used
    return np.concatenate(cnn_p), np.concatenate(head_p), np.concatenate(ys), used


def build(out: str | os.PathLike, roots: Sequence[str | os.PathLike], progress: bool = True,
          conditions: Sequence[str] = CONDITIONS, cnn: str | os.PathLike = DEFAULT_CNN) -> Path:
    """Export the encoder, extract every clip's features in each of ``conditions``, fit the
    heads on all of them (:func:`fit_heads`), fit the fusion temperature on window predictions
    on the corpora neither model trained on (:func:`held_out_predictions` with the CNN
    artifact ``cnn`` and its leave-one-corpus-out models; 1.0, recorded as not fitted, when
    there is none), write the artifact.

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
    settings = SegmentSettings(context_windows=CONTEXT_WINDOWS)
    encoder = SpeechEncoder(out / ENCODER_FILE)
    model_rate = FeatureConfig().sample_rate
    speakers = [c.speaker for c in found.clips]
    raw = np.vstack([clip_features(found.clips, encoder, settings, progress, cond, model_rate) for cond in conditions])
    y = np.tile([EMOTIONS.index(c.emotion) for c in found.clips], len(conditions))
    corpus = np.tile([c.corpus for c in found.clips], len(conditions))
    corpora = sorted({c.corpus for c in found.clips})
    version = "enchead-" + dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d.%H%M")
    head = fit_heads(raw, y, corpus, speakers, len(conditions), settings=settings,
                     training={"version": version, "recipe": "python -m training.encoder_head", "corpora": corpora,
                               "n_clips": len(found.clips), "conditions": list(conditions),
                               "model_rate_hz": model_rate, "telephone_seed": TELEPHONE_SEED,
                               "probe": "models/runs/2026-12-07-encoder",
                               "runs": ["models/runs/2026-12-07-accurate", "models/runs/2026-12-07-short-channels"]})
    if progress:
        print("  fusion temperature: corpora the models never heard", flush=True)
    cnn_p, head_p, y_cal, used = held_out_predictions(found.clips, raw, cnn, encoder, settings, model_rate=model_rate)
    cnn_t = load_meta(cnn).temperature
    head.cnn_weight, head.fusion = fusion_weight(cnn_t), FUSION
    head.training["cnn_weight_rule"] = (f"{CNN_WEIGHT} on the CNN's unscaled log-probabilities (its temperature "
                                        f"{cnn_t:.4g}): training.encoder_head.fusion_weight")
    head.temperature = fit_fusion_temperature(cnn_p, head_p, y_cal, head.cnn_weight) if len(y_cal) else 1.0
    head.training["calibration"] = {
        "method": "temperature scaling (Guo et al. 2017) of the fused probabilities, NLL-fitted",
        "data": "window predictions on corpora neither model trained on (training.encoder_head.held_out_predictions:"
                " each speaker's clips as one call channel, in the corpus's order and in a random one, and each clip"
                " alone; heads fitted without the corpus)"
                if len(y_cal) else "none (no corpus that a CNN of the recipe never heard): not fitted",
        "corpora": {k: {"cnn": Path(v[0]).relative_to(Path(cnn)).as_posix() or ".", "n_windows": v[1]}
                    for k, v in used.items()},
        "n_windows": int(len(y_cal))}
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
