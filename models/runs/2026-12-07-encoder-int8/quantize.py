"""Write the encoder variants measured by ``measure_int8.py``: onnxruntime dynamic quantisation
(``onnxruntime.quantization.quantize_dynamic``: int8 weights, activations quantised per batch at
run time; the LSTM nodes become ``com.microsoft.DynamicQuantizeLSTM``) and the graph optimised
offline (``SessionOptions.optimized_model_filepath``). ``-pc``: per-channel weight scales; ``-rr``:
``reduce_range`` (7-bit weights); ``-skip0``: the first LSTM layer kept in float
(``nodes_to_exclude``).

Usage: python models/runs/2026-12-07-encoder-int8/quantize.py FLOAT_ONNX OUT_DIR
Writes OUT_DIR/{qint8,quint8,qint8-pc,quint8-pc,qint8-rr,qint8-skip0,qint8-pc-skip0,opt-all}.onnx and prints each file's op types.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

FIRST_LSTM = "/lstm/LSTM"  # its input is the mel *power* spectrogram (huge dynamic range)
# name -> (weight type, per_channel, reduce_range, nodes kept in float)
VARIANTS = {"qint8": (QuantType.QInt8, False, False, []), "quint8": (QuantType.QUInt8, False, False, []),
            "qint8-pc": (QuantType.QInt8, True, False, []), "quint8-pc": (QuantType.QUInt8, True, False, []),
            "qint8-rr": (QuantType.QInt8, False, True, []),
            "qint8-skip0": (QuantType.QInt8, False, False, [FIRST_LSTM]),
            "qint8-pc-skip0": (QuantType.QInt8, True, False, [FIRST_LSTM])}


def main(src: str, out: str) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (wt, pc, rr, keep) in VARIANTS.items():
        dst = out / f"{name}.onnx"
        try:
            quantize_dynamic(src, dst, weight_type=wt, per_channel=pc, reduce_range=rr, nodes_to_exclude=keep)
        except Exception as e:  # report and go on: a variant may not support the LSTM op
            print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
            continue
        ops = Counter(n.op_type for n in onnx.load(dst).graph.node)
        print(f"{name}: {dst.stat().st_size} bytes, ops {dict(ops)}", flush=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(out / "opt-all.onnx")
    ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(out / "opt-all.onnx").graph.node)
    print(f"opt-all: ops {dict(ops)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
