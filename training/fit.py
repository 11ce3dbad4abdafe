"""Step 5 of a training run: fit one model family on normalised windows.

:func:`fit` compiles the model (AdamW, warm-up + cosine schedule, label smoothing), feeds
it shuffled batches with feature-space masking and mixup (:func:`sample_weights` per
window) and picks the checkpoint on the validation partition only (:func:`val_score`,
smoothed over epochs), or keeps the last epoch (``select.checkpoint: last``).
"""
from __future__ import annotations

import time

import numpy as np

from ser_lib.labels import EMOTIONS

from .dataset import WindowSet, class_weights


def val_score(results: dict) -> float:
    """Mean over corpora of clip-level UA (the selection score)."""
    per = [v["clip"]["ua"] for k, v in results.items() if k != "pooled"]
    return float(np.mean(per)) if per else results["pooled"]["clip"]["ua"]


def group_weights(groups, y) -> np.ndarray:
    """Sample weights giving every (group, label) pair present the same total weight.

    Args:
        groups, y: ``(n,)`` each row's group (e.g. its corpus) and label.

    Returns:
        ``float64 (n,)``, mean 1: ``n / (n_pairs * size of the row's pair)``.
    """
    keys = np.char.add(np.char.add(np.asarray(groups).astype(str), "|"), np.asarray(y).astype(str))
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return len(keys) / (len(counts) * counts[inverse])


def sample_weights(ws: WindowSet, rule, n_cls: int = len(EMOTIONS)) -> np.ndarray:
    """Per-window training weights.

    Args:
        ws: the training windows.
        rule: ``"corpus_class"`` -- every (corpus, class) group present gets the same total
            weight (:func:`group_weights`) (corpora contribute the labels they have, and a big corpus does not drown
            a small one); ``True`` / ``"class"`` -- balanced class weights
            (:func:`training.dataset.class_weights`); ``False`` -- all 1.

    Returns:
        ``float32 (len(ws),)``, mean 1 over the windows.
    """
    if rule == "corpus_class":
        return group_weights(ws.corpus, ws.y).astype(np.float32)
    if rule in (True, "class"):
        cw = class_weights(ws.y, n_cls)
        return np.array([cw[c] for c in range(n_cls)], dtype=np.float32)[ws.y]
    return np.ones(len(ws), dtype=np.float32)


def fit(family: str, train_ws: WindowSet, val_ws: WindowSet | None, xtr: np.ndarray, xval: np.ndarray | None,
        conf: dict, epochs: int, progress: bool = True, echo=print, targets: np.ndarray | None = None):
    """Train one model family on normalised windows, selecting the epoch on VAL.

    Args:
        family: ``"cnn1d"`` or ``"cnn2d"``.
        train_ws, val_ws: the training / validation windows (labels, clips, corpora);
            ``val_ws = None`` trains exactly ``epochs`` epochs and keeps the last weights
            (the final model of the cross-validated recipe, which has no data left over).
        xtr, xval: model inputs of those windows (:func:`ser_lib.features.model_input`), float32.
        epochs: maximum epochs.
        targets: ``float32 (len(train_ws), n_classes)`` soft training targets (rows summing to
            1, e.g. :func:`training.distill.soft_targets`) instead of the one-hot labels;
            mixup and label smoothing apply to them as to one-hot targets. Validation always
            scores the hard labels.

    Returns:
        ``(model with the best validation weights, history dict, best epoch (1-based), fit seconds)``.
    """
    import keras
    from .models import build_model

    tc = conf["train"]
    seed = int(conf["seed"])
    keras.utils.set_random_seed(seed)
    n_cls = len(EMOTIONS)
    model = build_model(family, xtr.shape[1:], n_cls, **conf["models"].get(family, {}))
    bs = int(tc["batch_size"])
    _compile(model, tc, int(np.ceil(len(xtr) / bs)), epochs)
    y_onehot = np.eye(n_cls, dtype=np.float32)[train_ws.y] if targets is None else np.asarray(targets, np.float32)
    if y_onehot.shape != (len(train_ws), n_cls):
        raise ValueError(f"training targets of shape {y_onehot.shape}, expected {(len(train_ws), n_cls)}")
    sample_w = sample_weights(train_ws, tc.get("class_weights", True), n_cls)
    batches = _make_batches(xtr, y_onehot, sample_w, bs, tc, seed)

    history: dict[str, list] = {"loss": [], "accuracy": [], "val_loss": [], "val_window_ua": [],
                                "val_clip_ua": [], "val_score": [], "val_score_smoothed": [], "lr": []}
    # Checkpoint selection and early stopping use the validation score averaged over
    # `smooth` consecutive epochs (centred): with two RAVDESS validation actors the
    # per-epoch score jumps by +-0.05, and picking its single best epoch picks noise.
    smooth = max(1, int(conf.get("select", {}).get("smooth_epochs", 3)))
    # select.checkpoint: "last" keeps the weights at the end of the cosine schedule (no early
    # stopping; validation is logged); "best_smoothed" picks the epoch by validation score.
    last_epoch = conf.get("select", {}).get("checkpoint", "best_smoothed") == "last"
    half = smooth // 2
    recent: list[tuple[int, list]] = []  # (epoch, weights) of the last `half + 1` epochs
    best = {"score": -1.0, "epoch": 0, "weights": None}
    wait = 0
    t0 = time.time()

    def consider(center: int) -> bool:
        lo, hi = max(0, center - 1 - half), min(len(history["val_score"]), center + half)
        sm = float(np.mean(history["val_score"][lo:hi]))
        history["val_score_smoothed"].append(sm)
        if sm > best["score"] + 1e-9:
            best.update(score=sm, epoch=center, weights=next(w for e, w in recent if e == center))
            return True
        return False

    if val_ws is None:
        h = model.fit(batches, epochs=epochs, verbose=2 if progress else 0, shuffle=False)
        history["loss"], history["accuracy"] = list(map(float, h.history["loss"])), list(map(float, h.history["accuracy"]))
        return model, history, epochs, time.time() - t0
    yval_onehot = np.eye(n_cls, dtype=np.float32)[val_ws.y]
    for epoch in range(1, epochs + 1):
        h = model.fit(batches, epochs=1, verbose=2 if progress else 0, shuffle=False)
        res, vloss, score = _validate(model, h, val_ws, xval, yval_onehot, history)
        recent = (recent + [(epoch, model.get_weights())])[-(half + 1):]
        improved = consider(epoch - half) if epoch - half >= 1 else False
        wait = 0 if improved else wait + (epoch - half >= 1)
        per = " ".join(f"{k}={v['clip']['ua']:.3f}" for k, v in res.items() if k != "pooled")
        echo(f"[{family}] epoch {epoch}/{epochs} loss={history['loss'][-1]:.3f} val_loss={vloss:.3f} "
             f"val clip UA {per} score={score:.3f}{' (best smoothed: epoch %d)' % best['epoch'] if improved else ''}"
             f" ({time.time() - t0:.0f}s)")
        if last_epoch:
            continue  # the schedule's end is the model: validation is only watched
        if wait >= int(tc["patience"]):
            echo(f"[{family}] early stop: no better smoothed validation score for {wait} epochs")
            break
    if last_epoch:
        return model, history, epochs, time.time() - t0
    # The last `half` epochs have no full window after them; score them on what exists.
    for center in range(max(1, len(history["val_score"]) - half + 1), len(history["val_score"]) + 1):
        consider(center)
    model.set_weights(best["weights"])
    return model, history, best["epoch"], time.time() - t0


def _compile(model, tc: dict, steps: int, epochs: int) -> None:
    """AdamW on a cosine schedule over ``epochs * steps`` batches (after a linear warm-up of
    ``warmup_epochs``), label-smoothed cross-entropy."""
    import keras

    warm = int(tc.get("warmup_epochs", 0)) * steps
    lr = float(tc["learning_rate"])
    sched = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warm else lr, decay_steps=max(1, epochs * steps - warm), alpha=0.0,
        warmup_target=lr if warm else None, warmup_steps=warm)
    model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=float(tc["weight_decay"])),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(tc["label_smoothing"])),
                  metrics=["accuracy"])


def _validate(model, h, val_ws: WindowSet, xval: np.ndarray, yval_onehot: np.ndarray, history: dict):
    """Score one epoch on the validation windows and append it (and the epoch's training loss,
    ``h``) to ``history``. Returns ``(evaluate_probs results, val loss, selection score)``."""
    import keras
    from .evaluate import evaluate_probs

    probs = model.predict(xval, batch_size=512, verbose=0)
    res = evaluate_probs(val_ws, probs, len(EMOTIONS))
    vloss = float(keras.losses.CategoricalCrossentropy()(yval_onehot, probs))
    score = val_score(res)
    history["loss"].append(float(h.history["loss"][-1]))
    history["accuracy"].append(float(h.history["accuracy"][-1]))
    history["val_loss"].append(vloss)
    history["val_window_ua"].append(res["pooled"]["window"]["ua"])
    history["val_clip_ua"].append(res["pooled"]["clip"]["ua"])
    history["val_score"].append(score)
    history["lr"].append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return res, vloss, score


def _make_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray, batch_size: int, tc: dict, seed: int):
    """A shuffling ``keras.utils.PyDataset`` with feature-space masking and optional mixup."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            xb, yb, wb = x[idx].copy(), y[idx].copy(), w[idx].copy()
            n, frames, feats = xb.shape
            rng = self.rng
            for _ in range(int(tc.get("time_masks", 0))):
                width = rng.integers(0, int(tc["time_mask_frames"]) + 1, n)
                start = rng.integers(0, frames, n)
                t = np.arange(frames)
                xb[(t[None, :] >= start[:, None]) & (t[None, :] < (start + width)[:, None])] = 0.0
            for _ in range(int(tc.get("feature_masks", 0))):
                width = rng.integers(0, int(tc["feature_mask_width"]) + 1, n)
                start = rng.integers(0, feats, n)
                f = np.arange(feats)
                m = (f[None, :] >= start[:, None]) & (f[None, :] < (start + width)[:, None])
                xb.transpose(0, 2, 1)[m] = 0.0
            alpha = float(tc.get("mixup_alpha", 0.0))
            if alpha > 0:
                lam = rng.beta(alpha, alpha, n).astype(np.float32)
                lam = np.maximum(lam, 1 - lam)
                perm = rng.permutation(n)
                xb = lam[:, None, None] * xb + (1 - lam[:, None, None]) * xb[perm]
                yb = lam[:, None] * yb + (1 - lam[:, None]) * yb[perm]
                wb = lam * wb + (1 - lam) * wb[perm]
            return xb, yb, wb

    return Batches()
