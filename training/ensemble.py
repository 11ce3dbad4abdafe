"""Seed ensembles: models of one recipe trained with different seeds, served as one model.

Averaging the class probabilities of independently seeded networks is the plainest
ensemble (Lakshminarayanan et al. 2017, "Simple and scalable predictive uncertainty
estimation using deep ensembles"): it lowers the variance that a single seed's run adds to
every prediction. The members are combined into **one** Keras functional model of stock
layers, so the artifact format, the LiteRT export, :class:`ser_lib.runtime.Predictor`, the
job and the temperature scaling stay exactly as for one model.

Each member standardises its input with its own training statistics (the augmentation draws
differ with the seed, so the statistics differ a little). The combined model takes the input
standardised with member 0's statistics; member ``m``'s branch starts with a fixed
``keras.layers.Normalization`` that maps it to member ``m``'s standardisation:
``(x0 * s0 + m0 - mm) / sm == (x0 - (mm - m0) / s0) / (sm / s0)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib import artifact as art
from ser_lib.errors import ArtifactError


def combine(models: Sequence, means: Sequence[np.ndarray], stds: Sequence[np.ndarray]):
    """One Keras model that averages the members' output probabilities.

    Args:
        models: Keras models with equal input shapes ``(frames, features)`` and equal
            softmax outputs ``(n_classes,)``.
        means, stds: each member's standardisation statistics, float32 ``(features,)``.

    Returns:
        a functional ``keras.Model``, input standardised with ``means[0]``, ``stds[0]``;
        output ``(batch, n_classes)`` float32, the mean of the members' probabilities.

    Raises:
        ValueError: fewer than two members, or unequal shapes.
    """
    import keras
    from keras import layers

    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(models)}")
    shapes = {(tuple(m.input_shape[1:]), tuple(m.output_shape[1:])) for m in models}
    if len(shapes) != 1:
        raise ValueError(f"members differ in input or output shape: {sorted(shapes)}")
    m0, s0 = np.asarray(means[0], np.float64), np.asarray(stds[0], np.float64)
    x = keras.Input(shape=models[0].input_shape[1:], name="features")
    outs = []
    for i, (model, mean, std) in enumerate(zip(models, means, stds)):
        model.name = f"member_{i}"  # nested models need distinct names
        h = x
        if i:
            mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
            h = layers.Normalization(mean=((mean - m0) / s0).tolist(), variance=((std / s0) ** 2).tolist(),
                                     name=f"to_member_{i}")(h)
        outs.append(model(h))
    out = layers.Average(name="probs")(outs)
    return keras.Model(x, out, name="seed_ensemble")


def combine_artifacts(dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
                      version: str | None = None) -> Path:
    """Write the artifact of the seed ensemble of the artifacts in ``dirs``.

    The metadata is member 0's (labels, feature and speech configuration, standardisation,
    temperature, metrics), with ``training["ensemble"]`` listing every member's version,
    seed and training record; ``version`` replaces member 0's version when given.

    Returns:
        ``out``.

    Raises:
        ArtifactError: a directory is not an artifact, or the members differ in labels,
            feature or speech configuration (they would not score the same windows).
    """
    metas = [art.load_meta(d) for d in dirs]
    for m in metas[1:]:
        for field in ("labels", "feature_config", "speech_config"):
            if getattr(m, field) != getattr(metas[0], field):
                raise ArtifactError(f"ensemble members differ in {field}: {metas[0].version} vs {m.version}")
    models = [art.load_model_bytes(art.read_bytes(d).model_bytes) for d in dirs]
    model = combine(models, [m.norm_mean for m in metas], [m.norm_std for m in metas])
    raw = [json.loads((Path(d) / art.META_FILE).read_text()) for d in dirs]
    meta = art.ArtifactMeta.from_json(json.dumps(raw[0]))
    if version:
        meta.version = version
    meta.training = {**raw[0].get("training", {}),
                     "ensemble": [{"version": r["version"], "seed": r.get("training", {}).get("seed"),
                                   "training": r.get("training", {})} for r in raw]}
    return art.save(out, model, meta)
