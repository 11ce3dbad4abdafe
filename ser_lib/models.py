"""Which model scores the windows: the ``default`` CNN, or the ``accurate`` CNN + speech-encoder fusion.

``model.variant`` of ``conf/job.yaml`` (``ser analyze`` / ``ser predict --variant``) picks one:

* ``default``: the CNN artifact (``model.path``, else the shipped ``models/ser-cnn``) run by
  :class:`ser_lib.runtime.Predictor`: the fast model (the job at >= 1,000x realtime on 2 cores).
* ``accurate``: the same CNN *and* an encoder-head artifact (``model.encoder_path``, else the
  shipped ``models/ser-accurate``: resemblyzer's GE2E speech encoder on onnxruntime plus a
  logistic-regression head, :mod:`ser_lib.encoder_head`). Each channel's speech windows are
  scored by both; the head's inputs are pooled over each window's neighbours in its run of
  speech (``context_windows``) and standardised over the channel's own speech windows
  (the call channel is the "speaker"); the window probabilities fuse the two models'
  (:func:`ser_lib.encoder_head.fuse` with the head file's ``cnn_weight``, ``fusion`` rule and
  ``temperature``: the shipped head, their geometric mean, temperature-scaled). Slower (the
  encoder costs about 11-14 CPU-seconds per audio hour), more accurate on languages and
  speakers it never heard (``models/runs/2026-12-07-accurate``).

:class:`ModelBundle` is what the Spark driver broadcasts (plain bytes);
:func:`load_scorer` turns it into the object :func:`ser_lib.scoring.score_recording` takes:
a :class:`~ser_lib.runtime.Predictor` or an :class:`AccuratePredictor`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import artifact as art
from .encoder_head import EncoderHeadBytes, EncoderModel
from .errors import ArtifactError, ConfigError

VARIANTS = ("default", "accurate")
#: The shipped encoder-head artifact inside an installed package (``setup.py`` copies
#: ``models/ser-accurate`` there) and in a checkout.
PACKAGED_ENCODER = Path(__file__).resolve().parent / "accurate_model"
SOURCE_ENCODER = Path(__file__).resolve().parent.parent / "models" / "ser-accurate"
#: The encoder-head artifact used when ``model.encoder_path`` is empty.
DEFAULT_ENCODER = art.shipped(PACKAGED_ENCODER, SOURCE_ENCODER, "encoder_head.json")


@dataclass
class ModelBundle:
    """A model as plain bytes (picklable: the Spark driver broadcasts it).

    Attributes:
        cnn: the CNN artifact's bytes; encoder: the encoder-head artifact's (None: ``default``).
        meta: the CNN's metadata with :attr:`version` as its version.
        version: the version written to every output row: the CNN's (``cnn1d-...``), or for
            the accurate model ``<cnn version>+<head version>``.
        digest: SHA-256 (hex) of every file the scorer is built from (:func:`bundle_digest`):
            what a worker keys its loaded model on. A version names an artifact only by
            convention (``ser train`` stamps it to the minute; a copied or hand-edited folder keeps
            it), so two different models with one version must not share a loaded model.
    """

    cnn: art.ArtifactBytes
    encoder: EncoderHeadBytes | None
    meta: art.ArtifactMeta
    version: str
    digest: str

    @property
    def variant(self) -> str:
        return "default" if self.encoder is None else "accurate"


def read_bundle(variant: str = "default", model_path: str | os.PathLike | None = None,
                encoder_path: str | os.PathLike | None = None) -> ModelBundle:
    """Read the chosen model's files.

    Args:
        variant: ``default`` or ``accurate``.
        model_path: CNN artifact folder (None or empty: :data:`ser_lib.artifact.DEFAULT_ARTIFACT`).
        encoder_path: encoder-head artifact folder for ``accurate`` (None or empty:
            :data:`DEFAULT_ENCODER`).

    Raises:
        ConfigError: unknown ``variant``.
        ArtifactError: a folder is not an artifact, or the head's labels differ from the CNN's.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"model.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    cnn = art.read_bytes(model_path or art.DEFAULT_ARTIFACT)
    meta = art.ArtifactMeta.from_json(cnn.meta_json)
    if variant == "default":
        return ModelBundle(cnn, None, meta, meta.version, bundle_digest(cnn, None))
    enc = EncoderHeadBytes.read(encoder_path or DEFAULT_ENCODER)
    from .encoder_head import EncoderHead
    head = EncoderHead.from_json(enc.head_json)
    if list(head.labels) != list(meta.labels):
        raise ArtifactError(f"encoder head labels {head.labels} differ from model {meta.version}'s {meta.labels}")
    version = f"{meta.version}+{head.training.get('version', 'encoder-head')}"
    return ModelBundle(cnn, enc, dataclasses.replace(meta, version=version), version, bundle_digest(cnn, enc))


def bundle_digest(cnn: art.ArtifactBytes, encoder: EncoderHeadBytes | None) -> str:
    """SHA-256 (hex, 64 characters) over the CNN artifact's files and, for the accurate model,
    the encoder-head artifact's, each length-prefixed so that no two file sets collide by
    concatenation. About 6 ms for the shipped accurate model's 10 MB, once per job on the driver."""
    h = hashlib.sha256()
    parts = [cnn.meta_json.encode(), cnn.model_bytes, cnn.runtime_bytes]
    if encoder is not None:
        parts += [encoder.head_json.encode(), encoder.encoder_onnx, encoder.license_text.encode(), encoder.encoder_int8]
    for part in parts:
        h.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


class AccuratePredictor:
    """The accurate model: a CNN :class:`~ser_lib.runtime.Predictor` plus the encoder head.

    Quacks like a Predictor (``meta`` with the fused version, ``labels``, ``predict`` = the
    CNN's window probabilities), and has :attr:`encoder`, which
    :func:`ser_lib.scoring.score_recording` uses to fuse each channel's probabilities.

    Raises:
        ArtifactError: the head's labels differ from the CNN's.
    """

    def __init__(self, cnn, encoder: EncoderModel, version: str | None = None):
        if encoder.labels != list(cnn.labels):
            raise ArtifactError(f"encoder head labels {encoder.labels} differ from the CNN's {cnn.labels}")
        self.cnn, self.encoder = cnn, encoder
        self.meta = dataclasses.replace(cnn.meta, version=version or f"{cnn.meta.version}+{encoder.version}")

    @property
    def labels(self) -> list[str]:
        return self.cnn.labels

    @property
    def batch_size(self) -> int:
        """The CNN's windows per model call."""
        return self.cnn.batch_size

    def predict(self, window_feats: np.ndarray) -> np.ndarray:
        """The CNN's probabilities (:meth:`ser_lib.runtime.Predictor.predict`)."""
        return self.cnn.predict(window_feats)


def load_scorer(bundle: ModelBundle, batch_size: int = 512, runtime: str | None = None):
    """The loaded model of ``bundle``: a Predictor (``default``) or an :class:`AccuratePredictor`.

    Raises:
        ArtifactError: unloadable artifact.
    """
    from .runtime import Predictor

    cnn = Predictor(bundle.cnn, None, batch_size, runtime=runtime)
    if bundle.encoder is None:
        return cnn
    return AccuratePredictor(cnn, EncoderModel(bundle.encoder, int8=True), bundle.version)
