"""Model families for window-level emotion classification.

Both take one analysis window, ``(frames_per_window, n_features)`` = (197, 77) float32
normalised features (see :mod:`ser_lib.features`), and output softmax probabilities
over :data:`ser_lib.labels.EMOTIONS`. Only built-in Keras layers are used, so the
artifact loads in Keras safe mode with no custom objects.

* ``cnn1d`` -- temporal 1-D CNN over the 77-dim frame vectors: a stride-2 first
  convolution (halves the frame rate to 20 ms, the main cost saving), three more
  Conv1D/BN/ReLU blocks with max pooling, global average + max pooling over time,
  dropout, a small dense layer, softmax. ~9 MFLOPs and ~100 k parameters per window.
* ``cnn2d`` -- 2-D CNN over the (197 frames x 40 log-mel bands) image (the mel
  columns are cropped out of the feature vector inside the model), four
  Conv2D/BN/ReLU/max-pool blocks, global average + max pooling, dropout, softmax.

FLOPs are counted analytically (:func:`count_flops`): 2 FLOPs per multiply-add of
convolutions and dense layers (the usual convention, e.g. Molchanov et al. 2017);
batch norm, activations and pooling are left out (<2 % here, and BN folds into the
convolution at inference).

``python -m training.models`` prints parameters, FLOPs and the measured windows/s
on one CPU core for both families.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

# the feature layout's first log-mel column (34: zcr, rms_db, 20 MFCC, 12 chroma) and band count
from ser_lib.speech import MEL_OFFSET, N_MELS

FAMILIES = ("cnn1d", "cnn2d")


def build_cnn1d(input_shape: tuple[int, int], n_classes: int, filters: Sequence[int] = (48, 64, 96, 128),
                dropout: float = 0.4, dense: int = 64, l2: float = 1e-4, cmn: bool = False,
                var_pool: bool = False, attn_pool: bool = False, attn_units: int = 64):
    """Temporal 1-D CNN.

    Args:
        input_shape: ``(frames, features)``.
        n_classes: output units.
        filters: channels of the four conv blocks (kernel 5 stride 2, then 3, 3, 3).
        dropout: dropout rate before each dense layer.
        dense: hidden dense units (0 = none).
        l2: L2 weight penalty on conv/dense kernels.
        cmn: window mean normalisation: the convolutions see each feature minus its
            mean over the window's frames (cepstral mean normalisation generalised to
            all features, which removes a stationary channel / level offset), and the
            removed means reach the classifier through a small dense projection.
        var_pool: also pool each channel's variance over time (``mean(x^2) - mean(x)^2``,
            clamped at 0) beside its mean and maximum: the second-order statistics pooling
            of x-vectors (Snyder et al. 2018, ICASSP), which carries how much the voice
            varies within the window. Built from stock layers only, so the model saves,
            loads and converts to LiteRT without custom objects.
        attn_pool: also pool with learned weights over time: attentive statistics pooling
            (Okabe et al. 2018, Interspeech), the weighted mean and variance of each channel
            with softmax-over-time weights from a small ``attn_units`` tanh layer, so the
            speech frames of a window count more than its silence or padding.
        attn_units: hidden units of the attention scorer.

    Returns:
        an uncompiled ``keras.Model`` named ``"cnn1d"``.
    """
    import keras
    from keras import layers

    reg = keras.regularizers.L2(l2) if l2 else None
    inp = keras.Input(shape=input_shape, name="features")
    x = inp
    extra = []
    if cmn:
        mean = layers.GlobalAveragePooling1D(keepdims=True, name="cmn_mean")(inp)
        x = layers.Subtract(name="cmn")([inp, mean])  # broadcasts over frames
        m = layers.Flatten(name="cmn_flat")(mean)
        extra = [layers.Dense(16, activation="relu", kernel_regularizer=reg, name="cmn_fc")(m)]
    for i, f in enumerate(filters):
        first = i == 0
        x = layers.Conv1D(f, 5 if first else 3, strides=2 if first else 1, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if 0 < i < len(filters) - 1:
            x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    gap = layers.GlobalAveragePooling1D(name="gap")(x)
    pooled = [gap, layers.GlobalMaxPooling1D(name="gmp")(x)]
    if var_pool:
        second = layers.GlobalAveragePooling1D(name="gap_sq")(layers.Multiply(name="sq")([x, x]))
        var = layers.Subtract(name="var_raw")([second, layers.Multiply(name="gap_sq_mean")([gap, gap])])
        pooled.append(layers.ReLU(name="var")(var))  # rounding can make it slightly negative
    if attn_pool:
        e = layers.Dense(attn_units, activation="tanh", name="attn_fc")(x)
        w = layers.Softmax(axis=1, name="attn_w")(layers.Dense(1, name="attn_score")(e))  # (batch, time, 1)
        am = layers.Flatten(name="attn_mean")(layers.Dot(axes=1, name="attn_dot")([w, x]))
        sq = layers.Flatten(name="attn_sq")(layers.Dot(axes=1, name="attn_dot_sq")([w, layers.Multiply(name="x_sq")([x, x])]))
        av = layers.Subtract(name="attn_var_raw")([sq, layers.Multiply(name="attn_mean_sq")([am, am])])
        pooled += [am, layers.ReLU(name="attn_var")(av)]
    x = layers.Concatenate(name="stats")([*pooled, *extra])
    x = layers.Dropout(dropout, name="drop0")(x)
    if dense:
        x = layers.Dense(dense, activation="relu", kernel_regularizer=reg, name="fc")(x)
        x = layers.Dropout(dropout, name="drop1")(x)
    out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="cnn1d")


def build_cnn2d(input_shape: tuple[int, int], n_classes: int, filters: Sequence[int] = (16, 32, 48, 64),
                dropout: float = 0.3, l2: float = 1e-4, mel_offset: int = MEL_OFFSET, n_mels: int = N_MELS):
    """2-D CNN over the (frames x log-mel) image.

    Args:
        input_shape: ``(frames, features)``; columns ``mel_offset:mel_offset + n_mels`` are
            the log-mel bands (any columns after them, e.g. pitch, are cropped off).
        n_classes: output units.
        filters: channels of the four 3x3 conv blocks (2x2 max pooling after the first three).
        dropout: dropout rate before the classifier.
        l2: L2 weight penalty.
        mel_offset: first mel column (34 for the 74-feature layout).
        n_mels: log-mel bands.

    Returns:
        an uncompiled ``keras.Model`` named ``"cnn2d"``.

    Raises:
        ValueError: ``mel_offset`` outside the feature vector.
    """
    import keras
    from keras import layers

    frames, n_feat = input_shape
    if not 0 <= mel_offset < mel_offset + n_mels <= n_feat:
        raise ValueError(f"mel bands {mel_offset}..{mel_offset + n_mels} outside {n_feat} features")
    reg = keras.regularizers.L2(l2) if l2 else None
    inp = keras.Input(shape=input_shape, name="features")
    x = layers.Reshape((frames, n_feat, 1), name="image")(inp)
    # Cropping2D instead of a slicing Lambda: a built-in layer, loadable in safe mode.
    x = layers.Cropping2D(((0, 0), (mel_offset, n_feat - mel_offset - n_mels)), name="mel")(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Concatenate(name="stats")([layers.GlobalAveragePooling2D(name="gap")(x),
                                          layers.GlobalMaxPooling2D(name="gmp")(x)])
    x = layers.Dropout(dropout, name="drop0")(x)
    out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="cnn2d")


def build_model(family: str, input_shape: tuple[int, int], n_classes: int, **kwargs):
    """Build a model of ``family`` (``"cnn1d"`` or ``"cnn2d"``) with keyword overrides.

    Raises:
        ValueError: unknown family.
    """
    if family == "cnn1d":
        return build_cnn1d(input_shape, n_classes, **kwargs)
    if family == "cnn2d":
        return build_cnn2d(input_shape, n_classes, **kwargs)
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def count_flops(model) -> int:
    """Forward FLOPs of one example: 2 x multiply-adds of Conv1D/Conv2D/Dense layers.

    A convolution costs ``out_positions * out_channels * kernel_size * in_channels``
    multiply-adds (no grouping here), a dense layer ``in * out``.

    Raises:
        NotImplementedError: the model holds a grouped/depthwise convolution.
    """
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv1D, layers.Conv2D)):
            if getattr(layer, "groups", 1) != 1:
                raise NotImplementedError("grouped convolutions are not counted")
            out_shape = layer.output.shape  # (None, *spatial, channels)
            positions = int(np.prod(out_shape[1:-1]))
            k = int(np.prod(layer.kernel.shape[:-1]))  # kernel dims x in_channels
            macs += positions * int(out_shape[-1]) * k
        elif isinstance(layer, layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
    return 2 * macs


def summary_stats(model) -> dict:
    """``{"params": total parameters, "flops": forward FLOPs per window, "size_mb": float32 weights, MB}``."""
    params = int(model.count_params())
    return {"params": params, "flops": count_flops(model), "size_mb": round(params * 4 / 1e6, 3)}


def windows_per_second(model, input_shape: tuple[int, int], n: int = 2048, batch: int = 512, repeats: int = 3) -> float:
    """Measured inference throughput, windows/s, of ``model(x, training=False)`` in this
    process (whatever thread limits it runs under); best of ``repeats`` after a warm-up."""
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    model(x, training=False)  # warm-up: graph tracing and oneDNN primitive creation
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(max(1, n // batch)):
            np.asarray(model(x, training=False))
        best = min(best, time.perf_counter() - t0)
    return max(1, n // batch) * batch / best


def _bench_main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.models [--threads 1] [--artifact DIR ...]``: parameters, FLOPs and
    one-core windows/s of both families (fresh weights), or of saved artifacts."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m training.models", description=_bench_main.__doc__)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for TensorFlow (default 1)")
    parser.add_argument("--artifact", action="append", default=[], help="artifact folder(s) to measure instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")
    args = parser.parse_args(argv)

    from ser_lib.runtime import limit_threads

    limit_threads(args.threads)  # before TensorFlow is imported
    from ser_lib.features import FeatureConfig
    from ser_lib.labels import EMOTIONS

    fc = FeatureConfig()
    shape = (fc.frames_per_window, fc.n_features)
    models = []
    if args.artifact:
        from ser_lib.artifact import load_model_bytes, read_bytes
        for a in args.artifact:
            models.append((a, load_model_bytes(read_bytes(a).model_bytes)))
    else:
        models = [(f, build_model(f, shape, len(EMOTIONS))) for f in FAMILIES]
    for name, m in models:
        row = {"model": name, **summary_stats(m), "threads": args.threads,
               "windows_per_s": round(windows_per_second(m, shape), 1)}
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{name:>12}: {row['params']:>9,} params  {row['flops'] / 1e6:8.2f} MFLOPs/window  "
                  f"{row['windows_per_s']:>9.0f} windows/s on {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_bench_main())
