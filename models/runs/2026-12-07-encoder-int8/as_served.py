"""Run a measurement script with the accurate model's encoder as the job serves it: every
``ser_lib.encoder_head.EncoderModel`` built with ``int8=True`` (the artifact's
``encoder-int8.onnx`` when it agrees with the float encoder on this CPU, as ``ser_lib.models.load_scorer``
loads it), instead of the float encoder those scripts (written before it shipped) load.

Usage: python models/runs/2026-12-07-encoder-int8/as_served.py SCRIPT [ARG ...]
"""
from __future__ import annotations

import runpy
import sys

import ser_lib.encoder_head as eh

_init = eh.EncoderModel.__init__


def _served(self, path, threads=1, int8=True):
    _init(self, path, threads, int8)
    print(f"[as_served] encoder {self.precision} (agreement {self.int8_cosine})", file=sys.stderr, flush=True)


eh.EncoderModel.__init__ = _served

if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
