"""Export resemblyzer's pretrained GE2E voice encoder to ONNX (training time only).

The weights come from the installed ``resemblyzer`` package (``resemblyzer/pretrained.pt``,
Apache-2.0); nothing is downloaded. The ONNX model takes mel power frames
(:func:`ser_lib.encoder.mel_frames`) and returns resemblyzer's embedding and the last
hidden state of each LSTM layer; :class:`ser_lib.encoder.SpeechEncoder` serves it with
onnxruntime. Needs the ``[train]`` install (torch, resemblyzer, onnx).

Usage: ``python -m training.encoder_export OUT_DIR`` writes ``encoder.onnx``, its int8 build
``encoder-int8.onnx`` (:func:`quantize_onnx`) and ``ENCODER_LICENSE.txt`` into ``OUT_DIR``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ser_lib.encoder import ENCODER_FILE, ENCODER_INT8_FILE, ENCODER_LICENSE_FILE, N_MELS, PARTIAL_FRAMES

#: ONNX opset of the export.
OPSET = 17


def _wrapped():
    """resemblyzer's VoiceEncoder (CPU, eval) wrapped to return (embedding, hidden per layer)."""
    import torch
    from resemblyzer import VoiceEncoder

    enc = VoiceEncoder(device="cpu", verbose=False).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = enc

        def forward(self, mels):
            _, (hidden, _) = self.enc.lstm(mels)
            raw = self.enc.relu(self.enc.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True), hidden.transpose(0, 1)

    return Wrapped().eval()


def licence_notice() -> str:
    """The notice that travels with the converted encoder: source, version and the package's
    Apache-2.0 licence text (read from the installed distribution)."""
    from importlib import metadata

    dist = metadata.distribution("resemblyzer")
    text = None
    for f in dist.files or []:
        if Path(str(f)).name.upper().startswith("LICENSE"):
            text = Path(dist.locate_file(f)).read_text()
            break
    head = (f"{ENCODER_FILE}: the pretrained GE2E voice encoder of Resemblyzer {dist.version}\n"
            f"(https://github.com/resemble-ai/Resemblyzer, resemblyzer/pretrained.pt, Copyright Resemble AI),\n"
            "converted to ONNX by training/encoder_export.py (weights unchanged); "
            f"{ENCODER_INT8_FILE}: the same with its\n"
            "second and third LSTM layers and its linear layer quantised to int8 weights (onnxruntime).\n"
            "Licensed under the Apache License, Version 2.0; the licence text follows.\n\n")
    if text is None:
        text = "Apache License, Version 2.0: http://www.apache.org/licenses/LICENSE-2.0\n"
    return head + text


def export_onnx(out_dir: str | os.PathLike) -> Path:
    """Write ``encoder.onnx`` (and its licence notice) into ``out_dir``.

    Inputs ``mels`` float32 ``(batch, frames, 40)``; outputs ``embedding`` ``(batch, 256)``
    and ``hidden`` ``(batch, 3, 256)``; batch and frames are dynamic.

    Returns:
        the ONNX file's path.

    Raises:
        ImportError: torch or resemblyzer is not installed (``pip install .[train]``).
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _wrapped()
    dummy = torch.rand(2, PARTIAL_FRAMES, N_MELS)
    path = out / ENCODER_FILE
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the legacy TorchScript exporter warns about tracing the LSTM's shape checks and about
        # batch sizes; tests/test_encoder.py checks the export on batches 1-5 and 97-300 frames
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), input_names=["mels"], output_names=["embedding", "hidden"],
                          dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embedding": {0: "batch"},
                                        "hidden": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    (out / ENCODER_LICENSE_FILE).write_text(licence_notice())
    quantize_onnx(path, out / ENCODER_INT8_FILE)
    return path


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the int8 build of the float encoder ``src`` to ``dst``: onnxruntime's dynamic
    quantisation (``quantize_dynamic``, int8 weights per output channel, activations quantised
    per batch at run time) of every layer but the first LSTM.

    The first LSTM stays float because its input is the mel *power* spectrogram (median 3e-6,
    maximum about 4): quantised to 8 bits per tensor from its min/max, almost all of it becomes 0
    and the encoder's states fall to cosine 0.5 with the float ones. Kept float, the states agree
    at cosine 0.9997 on corpus speech, and the encoder costs 1.5x less CPU
    (models/runs/2026-12-07-encoder-int8).

    Raises:
        ValueError: ``src`` has no LSTM node.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    lstms = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "LSTM"]
    if not lstms:
        raise ValueError(f"{src} has no LSTM node to keep in float")
    # ONNX nodes are stored in topological order: the first LSTM is the one fed by the mels
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=lstms[:1])
    return Path(dst)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    print(export_onnx(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
