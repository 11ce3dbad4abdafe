"""Evaluation: UA / WA / macro-F1 at window and clip level, per corpus and pooled, plots.

Definitions (standard in speech emotion recognition, e.g. Schuller et al. 2011,
Speech Communication 53(9-10)):

* **UA** (unweighted accuracy) = unweighted average of per-class recall =
  ``sklearn.metrics.balanced_accuracy_score`` (mean recall over the classes present
  in ``y_true``).
* **WA** (weighted accuracy) = plain accuracy (``sklearn.metrics.accuracy_score``).
* **macro-F1** = ``sklearn.metrics.f1_score(average="macro", zero_division=0)``
  (over the labels present in ``y_true`` or ``y_pred``).

Window level scores each speech window on its own; clip level averages the
window probabilities over a clip's speech windows and takes the argmax (what a
per-utterance report does). Scores go through :class:`ser_lib.runtime.Predictor`,
i.e. the artifact's own normalisation, exactly as the job scores.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from ser_lib.labels import EMOTIONS

from .dataset import WindowSet


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict:
    """UA, WA, macro-F1 and the confusion matrix of integer labels.

    Args:
        y_true, y_pred: ``int (n,)`` label indices, ``n >= 1``.
        n_classes: size of the confusion matrix.

    Returns:
        ``{"ua", "wa", "macro_f1": float, "n": int, "recall": [per-class recall or None
        for classes absent from y_true], "confusion": n_classes x n_classes list (rows true)}``.

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equal, non-empty label arrays (got {len(y_true)} and {len(y_pred)})")
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    support = cm.sum(axis=1)
    recall = [float(cm[i, i] / support[i]) if support[i] else None for i in range(n_classes)]
    with warnings.catch_warnings():
        # a corpus with 4 of the 7 emotions (TurEV-DB) gets predictions of the other 3: that is
        # what UA over the classes present means, not a problem to warn about on every epoch
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        ua = float(balanced_accuracy_score(y_true, y_pred))
    return {
        "ua": ua,
        "wa": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": int(len(y_true)),
        "recall": recall,
        "confusion": cm.tolist(),
    }


def clip_probabilities(window_probs: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean window probability per clip.

    Args:
        window_probs: ``float (n_windows, n_classes)``.
        clip: ``int (n_windows,)`` clip index of each window, in ``[0, n_clips)``.

    Returns:
        ``float32 (n_clips, n_classes)``; a clip without windows gets a zero row.
    """
    sums = np.zeros((n_clips, window_probs.shape[1]), dtype=np.float64)
    np.add.at(sums, clip, window_probs)
    counts = np.bincount(clip, minlength=n_clips)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def _corpus_masks(ws: WindowSet):
    """Yield ``(name, window mask, clip mask)`` for "pooled" (everything), then each corpus."""
    yield "pooled", np.ones(len(ws), bool), np.ones(ws.n_clips, bool)
    for name in sorted(set(ws.clip_corpus.tolist())):
        yield name, ws.corpus == name, ws.clip_corpus == name


def evaluate_probs(ws: WindowSet, probs: np.ndarray, n_classes: int = len(EMOTIONS)) -> dict:
    """Window- and clip-level scores, per corpus and pooled.

    Args:
        ws: the evaluated windows.
        probs: ``float (len(ws), n_classes)`` model probabilities of ``ws.x``.

    Returns:
        ``{"pooled"|<corpus>: {"window": scores, "clip": scores}}`` (see :func:`scores`).
    """
    cp = clip_probabilities(probs, ws.clip, ws.n_clips)
    w_pred, c_pred = probs.argmax(1), cp.argmax(1)
    out = {}
    for name, wm, cm in _corpus_masks(ws):
        out[name] = {"window": scores(ws.y[wm], w_pred[wm], n_classes),
                     "clip": scores(ws.clip_label[cm], c_pred[cm], n_classes)}
    return out


def evaluate_predictor(predictor, ws: WindowSet) -> tuple[dict, np.ndarray]:
    """Score ``ws`` with a :class:`ser_lib.runtime.Predictor` (the artifact's own normalisation).

    Returns:
        ``(results of evaluate_probs, window probabilities float32 (n, n_classes))``.
    """
    probs = predictor.predict(ws.x)
    return evaluate_probs(ws, probs, len(predictor.labels)), probs


def clip_speakers(ws: WindowSet, speaker_of: Mapping[str, str]) -> np.ndarray:
    """Speaker of each clip of ``ws``.

    Args:
        ws: windows whose ``clip_id`` is an audio path, optionally with ``#<variant>``.
        speaker_of: audio path -> corpus-prefixed speaker id (``Clip.path -> Clip.speaker``).

    Returns:
        ``object (n_clips,)`` speaker ids.

    Raises:
        KeyError: a clip whose path is not in ``speaker_of``.
    """
    return np.array([speaker_of[str(cid).split("#", 1)[0]] for cid in ws.clip_id], dtype=object)


def bootstrap_ua_interval(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS),
                          n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of UA, resampling items with replacement
    (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13).

    It measures the sampling noise of a test set of this size; it does not cover the
    variation between *speakers* (a few held-out actors are one draw of speakers), so
    read it next to :func:`speaker_scores`.

    Args:
        y_true, y_pred: ``int (n,)`` label indices, ``n >= 1``.
        n_boot: bootstrap resamples.
        level: central coverage of the interval, in (0, 1).
        seed: resampling seed (the interval is deterministic for a given seed).

    Returns:
        ``(low, high)`` UA bounds.

    Raises:
        ValueError: empty or mismatched inputs, or ``level`` outside (0, 1).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    if n == 0 or n != len(y_pred):
        raise ValueError(f"need equal, non-empty label arrays (got {n} and {len(y_pred)})")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    t, ok = y_true[idx], (y_true == y_pred)[idx]
    flat = (np.arange(n_boot)[:, None] * n_classes + t).ravel()
    support = np.bincount(flat, minlength=n_boot * n_classes).reshape(n_boot, n_classes)
    hits = np.bincount(flat, weights=ok.ravel(), minlength=n_boot * n_classes).reshape(n_boot, n_classes)
    present = support > 0
    # UA over the classes present in each resample, as balanced_accuracy_score does.
    ua = (hits / np.maximum(support, 1)).sum(axis=1) / present.sum(axis=1)
    lo, hi = np.quantile(ua, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def speaker_scores(ws: WindowSet, probs: np.ndarray, speakers: np.ndarray,
                   n_classes: int = len(EMOTIONS), n_boot: int = 2000) -> dict:
    """Clip-level scores per corpus and per speaker, with a bootstrap interval of each corpus's UA.

    Args:
        ws: the evaluated windows.
        probs: ``float (len(ws), n_classes)`` window probabilities.
        speakers: ``(n_clips,)`` speaker per clip (:func:`clip_speakers`).

    Returns:
        ``{<corpus>|"pooled": {"clip_ua_ci95": [low, high], "per_speaker": {speaker:
        {"ua", "wa", "n"}}}}`` (``per_speaker`` only for corpora).
    """
    pred = clip_probabilities(probs, ws.clip, ws.n_clips).argmax(1)
    out = {}
    for name, _, cm in _corpus_masks(ws):
        lo, hi = bootstrap_ua_interval(ws.clip_label[cm], pred[cm], n_classes, n_boot)
        entry: dict = {"clip_ua_ci95": [round(lo, 4), round(hi, 4)]}
        if name != "pooled":
            per = {}
            for spk in sorted(set(speakers[cm].tolist())):
                m = cm & (speakers == spk)
                s = scores(ws.clip_label[m], pred[m], n_classes)
                per[spk] = {"ua": round(s["ua"], 4), "wa": round(s["wa"], 4), "n": s["n"]}
            entry["per_speaker"] = per
        out[name] = entry
    return out


def format_speakers(detail: Mapping[str, Mapping]) -> str:
    """One line per corpus: the UA interval and per-speaker clip UA of :func:`speaker_scores`."""
    lines = []
    for corpus, d in detail.items():
        lo, hi = d["clip_ua_ci95"]
        line = f"{corpus:<8} clip UA 95% bootstrap interval [{lo:.3f}, {hi:.3f}]"
        if d.get("per_speaker"):
            line += "; per speaker: " + ", ".join(f"{k.split(':', 1)[-1]} {v['ua']:.3f}"
                                                  for k, v in d["per_speaker"].items())
        lines.append(line)
    return "\n".join(lines)


def summary_rows(results: Mapping[str, Mapping], condition: str) -> list[dict]:
    """Flatten :func:`evaluate_probs` output into table rows
    ``{"condition", "corpus", "level", "ua", "wa", "macro_f1", "n"}``."""
    rows = []
    for corpus, levels in results.items():
        for level in ("clip", "window"):
            s = levels[level]
            rows.append({"condition": condition, "corpus": corpus, "level": level,
                         "ua": round(s["ua"], 4), "wa": round(s["wa"], 4), "macro_f1": round(s["macro_f1"], 4),
                         "n": s["n"]})
    return rows


def format_table(rows: Sequence[Mapping]) -> str:
    """Plain-text table of :func:`summary_rows` rows."""
    head = f"{'condition':<10} {'corpus':<8} {'level':<6} {'UA':>6} {'WA':>6} {'mF1':>6} {'n':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['condition']:<10} {r['corpus']:<8} {r['level']:<6} {r['ua']:>6.3f} {r['wa']:>6.3f} "
                     f"{r['macro_f1']:>6.3f} {r['n']:>6}")
    return "\n".join(lines)


def plot_confusions(panels: Sequence[tuple[str, np.ndarray]], path: str | Path,
                    labels: Sequence[str] = EMOTIONS) -> Path:
    """Row-normalised confusion matrices side by side, written as a PNG.

    Args:
        panels: ``(title, counts (n_classes, n_classes), rows = true)`` per panel.
        path: output file.

    Returns:
        the written path.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels):
        cm = np.asarray(cm, dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=6.5,
                        color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path) -> Path:
    """Training curves (loss; val UA) per model, written as a PNG.

    Args:
        histories: model name -> history dict with ``loss``, ``val_loss`` and
            ``val_clip_ua`` / ``val_window_ua`` (pooled) / ``val_score`` (mean of the
            per-corpus clip UA, the selection score) lists, one value per epoch.
        path: output file.

    Returns:
        the written path.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        ep = np.arange(1, len(h.get("loss", [])) + 1)
        a1.plot(ep, h.get("loss", []), label=f"{name} train")
        if h.get("val_loss"):
            a1.plot(ep, h["val_loss"], "--", label=f"{name} val")
        for key, style in (("val_clip_ua", "-"), ("val_window_ua", ":"), ("val_score", "-.")):
            if h.get(key):
                a2.plot(ep, h[key], style, label=f"{name} {key[4:]}")
    a1.set_xlabel("epoch"), a1.set_ylabel("loss (train: weighted, smoothed, masked)"), a1.legend(fontsize=7)
    a2.set_xlabel("epoch"), a2.set_ylabel("validation UA"), a2.legend(fontsize=7)
    a2.set_ylim(0, 1)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- calibration

def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature ``T`` that minimises the negative log-likelihood of ``y``
    under ``softmax(log(probs) / T)`` (temperature scaling, Guo et al. 2017, ICML), found
    by ``scipy.optimize.minimize_scalar`` over ``log T`` in ``[log 0.05, log 20]``.

    Args:
        probs: ``float (n, n_classes)`` uncalibrated validation probabilities.
        y: ``int (n,)`` true labels.

    Returns:
        ``T > 0`` (1.0 for empty input).
    """
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0
    logp = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12))
    y = np.asarray(y)

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def calibration(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """Expected calibration error and the reliability diagram's bins of the top-class confidence.

    ECE = sum over equal-width confidence bins of ``|bin accuracy - bin mean confidence|``
    weighted by the bin's share of samples (Naeini et al. 2015, AAAI; Guo et al. 2017).

    Args:
        probs: ``float (n, n_classes)`` probabilities (``confidence`` = row max).
        y: ``int (n,)`` true labels.
        n_bins: equal-width bins over ``[0, 1]``.

    Returns:
        ``{"ece": float, "n": int, "bins": [{"lo", "hi", "n", "confidence", "accuracy"}, ...]}``
        (empty bins have ``None`` confidence and accuracy).
    """
    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = idx == b
        k = int(m.sum())
        c = float(conf[m].mean()) if k else None
        a = float(correct[m].mean()) if k else None
        if k:
            ece += k / max(len(y), 1) * abs(a - c)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": k, "confidence": c, "accuracy": a})
    return {"ece": float(ece), "n": int(len(y)), "bins": bins}


def ece_if_calibrated(cal: Mapping, draws: int = 2000, seed: int = 0) -> float:
    """The ECE a *perfectly calibrated* model would show on as many windows as ``cal``.

    ECE measured on a finite set is biased upward: even when every confidence is exactly
    the chance of being right, a bin's observed accuracy scatters around its confidence
    (binomially). This draws each bin's number of correct windows from
    ``Binomial(n_bin, bin mean confidence)`` ``draws`` times and returns the mean ECE, the
    level below which a measured ECE says nothing (cf. Roelofs et al. 2022, "Mitigating bias
    in calibration error estimation", AISTATS). Windows of one clip are correlated, so the
    real floor of a test fold is, if anything, higher.

    Args:
        cal: :func:`calibration`'s result (its bins' ``n`` and ``confidence`` are used).
        draws: simulated test sets.
        seed: numpy seed of the draws (the result is deterministic).

    Returns:
        the mean simulated ECE (float in [0, 1]); 0.0 when ``cal`` holds no samples.
    """
    bins = [b for b in cal["bins"] if b["n"]]
    if not bins:
        return 0.0
    n = np.array([b["n"] for b in bins])
    conf = np.array([b["confidence"] for b in bins], np.float64)
    correct = np.random.default_rng(seed).binomial(n, conf, size=(draws, len(n)))
    return float((np.abs(correct / n - conf) * n).sum(axis=1).mean() / n.sum())


def plot_reliability(panels: Sequence[tuple[str, Mapping]], path: str | Path) -> Path:
    """Reliability diagrams (accuracy vs confidence per bin, bar width = bin) of
    :func:`calibration` results, one panel each, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, cal) in zip(axes[0], panels):
        xs = [(b["lo"] + b["hi"]) / 2 for b in cal["bins"] if b["n"]]
        acc = [b["accuracy"] for b in cal["bins"] if b["n"]]
        conf = [b["confidence"] for b in cal["bins"] if b["n"]]
        width = cal["bins"][0]["hi"] - cal["bins"][0]["lo"]
        ax.bar(xs, acc, width=width * 0.95, color="#4c78a8", label="accuracy")
        ax.plot(conf, acc, "o", color="#f58518", ms=4, label="mean confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
               title=f"{title}\nECE {cal['ece']:.3f}, n={cal['n']}")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
