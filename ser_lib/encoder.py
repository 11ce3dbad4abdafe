"""A frozen pretrained speech encoder served on onnxruntime: resemblyzer's GE2E voice encoder.

The encoder (Wan et al. 2018, "Generalized end-to-end loss for speaker verification", ICASSP;
weights of the ``resemblyzer`` package 0.1.4, Apache-2.0, trained by Resemble AI) is a
3-layer LSTM (hidden size 256) over 40-band mel power spectra at 16 kHz (25 ms window, 10 ms
hop) followed by a linear layer, a ReLU and an L2 normalisation: one 256-d embedding per
1.6 s *partial* (160 frames). It was trained to tell speakers apart; its embeddings also
carry voice quality and arousal, which is what a small emotion head reads from them.

This module is the serving side: the mel front end in librosa (no PyTorch), the partial
slicing and the ONNX model on onnxruntime. The ONNX file is written once at training time
from the installed package (:mod:`training.encoder_export`); the tests check that this
module reproduces resemblyzer's own ``VoiceEncoder.embed_utterance`` (cosine ~1).

Every constant below is resemblyzer's (``resemblyzer/hparams.py``, ``resemblyzer/audio.py``,
``resemblyzer/voice_encoder.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Sample rate the encoder was trained at, Hz.
SAMPLE_RATE = 16000
#: Mel analysis window and hop, samples (25 ms and 10 ms at 16 kHz).
N_FFT = 400
HOP = 160
#: Mel bands.
N_MELS = 40
#: Frames per partial utterance (1.6 s).
PARTIAL_FRAMES = 160
#: Embedding size and LSTM layers (the ONNX model's ``hidden`` output has one row per layer).
EMBED_DIM = 256
N_LAYERS = 3
#: The ONNX file inside an artifact and its licence notice.
ENCODER_FILE = "encoder.onnx"
ENCODER_LICENSE_FILE = "ENCODER_LICENSE.txt"
#: The same encoder with int8 weights in its upper layers (:func:`training.encoder_export.quantize_onnx`),
#: what serving runs when it agrees with the float one on this CPU (:func:`int8_agreement`).
ENCODER_INT8_FILE = "encoder-int8.onnx"
#: Least cosine between the int8 and float encoders' last-layer states on :func:`check_mels` for
#: serving to use the int8 one. The shipped quantisation agrees at 0.998-0.9995 there (0.9997 on
#: corpus speech windows, min 0.997); one that saturates (plain int8 activations on the mel power
#: input) falls to 0.5-0.7 there and to 0.5 on corpus speech (models/runs/2026-12-07-encoder-int8).
INT8_MIN_COSINE = 0.98


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """resemblyzer's encoder input: the mel *power* spectrogram (not log) of 16 kHz audio.

    ``librosa.feature.melspectrogram`` with n_fft 400, hop 160, 40 Slaney mel bands, centred
    frames: ``resemblyzer.audio.wav_to_mel_spectrogram``.

    Args:
        wav: float ``(n,)`` mono samples at :data:`SAMPLE_RATE`, full scale +-1.

    Returns:
        float32 ``(1 + n // 160, 40)``, frames x bands.

    Raises:
        ValueError: not a 1-D array.
    """
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"mel_frames needs mono samples, shape (n,); got {wav.shape}")
    mel = librosa.feature.melspectrogram(y=wav, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return mel.astype(np.float32).T


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[slice]:
    """Where resemblyzer cuts an utterance into 1.6 s partials, as mel-frame slices
    (``VoiceEncoder.compute_partial_slices``): one every ``round(16000 / rate / 160)`` frames,
    the last kept only when at least ``min_coverage`` of it is audio (always at least one).

    Args:
        n_samples: utterance length in samples at 16 kHz.
        rate: partials per second (0.625 to 100).
        min_coverage: in (0, 1].

    Returns:
        frame slices of length :data:`PARTIAL_FRAMES`; the last may reach past the audio
        (pad the samples with zeros to ``slices[-1].stop * HOP``).

    Raises:
        ValueError: ``rate`` or ``min_coverage`` out of range.
    """
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / rate) / HOP))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} gives a step of {step} frames; it must be 1..{PARTIAL_FRAMES}")
    slices = [slice(i, i + PARTIAL_FRAMES) for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


@dataclass
class Partials:
    """The encoder's outputs for the partials of one recording.

    Attributes:
        embedding: float32 ``(n_partials, 256)``, each L2-normalised, non-negative.
        hidden: float32 ``(n_partials, 3, 256)``, the last hidden state of each LSTM layer
            (layer 0 first): the "which layer" lever; ``embedding`` is computed from layer 2.
        start_s: float ``(n_partials,)`` start of each partial in the recording, seconds.
    """

    embedding: np.ndarray
    hidden: np.ndarray
    start_s: np.ndarray

    def utterance(self) -> np.ndarray:
        """resemblyzer's utterance embedding: the L2-normalised mean of the partials', ``(256,)``."""
        raw = self.embedding.mean(0)
        return (raw / np.linalg.norm(raw)).astype(np.float32)


class SpeechEncoder:
    """The ONNX voice encoder on onnxruntime (CPU).

    Args:
        path: the ONNX file (:data:`ENCODER_FILE` of an artifact, or what
            :func:`training.encoder_export.export_onnx` wrote), or its bytes (what the Spark
            job broadcasts to executors).
        threads: onnxruntime intra-op threads (1: one core per process, as the job's executors).

    Raises:
        FileNotFoundError: no such file.
        ImportError: onnxruntime is not installed.
    """

    def __init__(self, path: str | os.PathLike | bytes, threads: int = 1):
        import onnxruntime as ort

        if not isinstance(path, bytes):
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"no encoder model at {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.path = None if isinstance(path, bytes) else path
        self.session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), opts,
                                            providers=["CPUExecutionProvider"])

    def run(self, mels: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Encode partials.

        Args:
            mels: float32 ``(n, frames, 40)`` mel power frames (:func:`mel_frames`), any
                number of frames (the partials are 160).

        Returns:
            ``(embedding (n, 256), hidden (n, 3, 256))`` float32.
        """
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if len(mels) == 0:
            return np.zeros((0, EMBED_DIM), np.float32), np.zeros((0, N_LAYERS, EMBED_DIM), np.float32)
        emb, hid = [], []
        for i in range(0, len(mels), batch_size):
            e, h = self.session.run(["embedding", "hidden"], {"mels": mels[i:i + batch_size]})
            emb.append(e)
            hid.append(h)
        return np.concatenate(emb), np.concatenate(hid)

    def partials(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE, rate: float = 1.3,
                 min_coverage: float = 0.75) -> Partials:
        """Encode a recording's partials (resemblyzer's ``embed_utterance`` without its
        preprocessing, which the caller chooses: volume normalisation, silence trimming).

        Args:
            wav: float ``(n,)`` mono samples, full scale +-1.
            sample_rate: of ``wav``; resampled to 16 kHz (soxr HQ) when different, so 8 kHz
                telephone audio is encoded band-limited to 4 kHz.
            rate, min_coverage: :func:`partial_slices`.

        Returns:
            :class:`Partials`.
        """
        mels, starts = partial_mels(wav, sample_rate, rate, min_coverage)
        emb, hid = self.run(mels)
        return Partials(emb, hid, starts)


def partial_mels(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, rate: float = 1.3,
                 min_coverage: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """The encoder input of a recording's partials (:meth:`SpeechEncoder.partials` without the
    model, so that the partials of many recordings can be encoded in one batch).

    Args: as :meth:`SpeechEncoder.partials`.

    Returns:
        ``(mels float32 (n_partials, 160, 40), start_s float (n_partials,))``.
    """
    wav = to_encoder_rate(wav, sample_rate)
    slices = partial_slices(len(wav), rate, min_coverage)
    need = slices[-1].stop * HOP
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    mel = mel_frames(wav)
    return np.stack([mel[s] for s in slices]), np.array([s.start * HOP / SAMPLE_RATE for s in slices])


def to_encoder_rate(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wav`` as float32 at :data:`SAMPLE_RATE` (soxr HQ resampling when needed)."""
    wav = np.asarray(wav, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return wav


def pool_stats(x: np.ndarray) -> np.ndarray:
    """Mean and standard deviation pooling over the first axis (SUPERB-style statistics
    pooling): ``(n, ...)`` -> ``(2 * prod(...),)`` float32, mean first; std 0 for ``n == 1``.

    Raises:
        ValueError: ``n == 0``.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ValueError("pool_stats needs at least one row")
    x = x.reshape(len(x), -1)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


def check_mels(n: int = 4, seed: int = 0) -> np.ndarray:
    """A fixed, speech-like encoder input for checking an encoder build on the machine that runs
    it: ``n`` 2 s recordings of :func:`ser_lib.synth.speech_like` at 8 kHz (the job's signal) and
    -30 dBFS (the level :func:`ser_lib.encoder_head.prepare` gives speech), as partials' mel
    frames, float32 ``(2 * n, 160, 40)``. Deterministic for a given ``seed``.
    """
    from .synth import speech_like

    rng = np.random.default_rng(seed)
    return np.concatenate([partial_mels(speech_like(2.0, 8000, rng, level_db=-30.0), 8000)[0] for _ in range(n)])


def int8_agreement(float_encoder: "SpeechEncoder", int8_encoder: "SpeechEncoder", mels: np.ndarray | None = None,
                   layer: int = N_LAYERS - 1) -> float:
    """Least cosine similarity, over partials, of the two encoders' ``layer`` states on ``mels``
    (:func:`check_mels` by default): how closely the int8 build follows the float one on this
    CPU (int8 kernels differ between CPUs; onnxruntime's u8s8 path can saturate without VNNI).
    """
    mels = check_mels() if mels is None else mels
    a = float_encoder.run(mels)[1][:, layer].astype(np.float64)
    b = int8_encoder.run(mels)[1][:, layer].astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(cos.min())
