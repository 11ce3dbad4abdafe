"""Throughput benchmark: the Spark job vs a seed-style baseline vs a bare STFT pass.

Run on demand (never from the unit tests)::

    python -m bench.run [--scales 1,4,16] [--skip-baseline]

See ``bench/README.md``.
"""
