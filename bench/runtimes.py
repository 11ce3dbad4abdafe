"""Inference runtimes for the served model: Keras/TensorFlow vs ONNX Runtime vs LiteRT.

    .venv/bin/pip install onnxruntime onnx tf2onnx      # the ONNX candidates (not project dependencies)
    .venv/bin/python -m bench.runtimes [--corpora ../shared/corpora] [--model models/ser-cnn]

For each architecture (the artifact's model if ``--model`` is given, else the served
``cnn1d``, ``cnn1d`` with ``cmn`` and ``cnn2d`` from ``training.models`` with random weights
and non-trivial batch-norm statistics), the model is exported with Keras 3's
``model.export(format="onnx")`` (tf2onnx) and ``format="litert"``, then each runtime is
measured in a fresh process pinned to one core with one thread: import time, load time
(model load + first batch), windows/s at batch 512 and 48, and the largest absolute
difference of its probabilities from Keras's on real feature windows
(:func:`ser_lib.features.window_features` + :func:`ser_lib.features.model_input` of RAVDESS
files; synthetic speech-like audio when the corpus is absent).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def windows(corpora: Path | None):
    import numpy as np

    from ser_lib.audio import load
    from ser_lib.features import FeatureConfig, model_input, window_features
    from ser_lib.synth import speech_like
    fc = FeatureConfig()
    files = sorted((corpora / "ravdess").glob("Actor_0[1-4]/*.*"))[::16][:10] if corpora else []
    ys = [load(str(f), fc.sample_rate)[0][0] for f in files]
    if not ys:
        rng = np.random.default_rng(0)
        ys = [speech_like(3.5, fc.sample_rate, rng, level_db=db) for db in (-35, -25, -15, -8)]
    wins = np.concatenate([window_features(y, fc, 0.1)[0] for y in ys])
    lv = model_input(wins, fc, np.zeros(fc.n_features, np.float32), np.ones(fc.n_features, np.float32))
    flat = lv.reshape(-1, fc.n_features)
    return model_input(wins, fc, flat.mean(0), flat.std(0) + 1e-3), ("ravdess" if files else "synthetic")


def export_models(x, root: Path, model_dir: str | None) -> list[str]:
    import keras
    import numpy as np

    from training.models import build_model
    rng = np.random.default_rng(0)
    if model_dir:
        from ser_lib.artifact import load_model_bytes, read_bytes
        models = {"artifact": load_model_bytes(read_bytes(model_dir).model_bytes)}
    else:
        models = {}
        for name, fam, kw in [("cnn1d", "cnn1d", {}), ("cnn1d-cmn", "cnn1d", {"cmn": True}), ("cnn2d", "cnn2d", {})]:
            keras.utils.set_random_seed(1)
            m = build_model(fam, x.shape[1:], 7, **kw)
            for layer in m.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape).astype("float32"))
                    layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape).astype("float32"))
            models[name] = m
    for name, m in models.items():
        d = root / name
        d.mkdir(parents=True)
        np.save(d / "x.npy", x)
        np.save(d / "ref.npy", np.asarray(m.predict_on_batch(x)))
        m.save(d / "model.keras")
        m.export(str(d / "model.onnx"), format="onnx", verbose=False)
        m.export(str(d / "model.tflite"), format="litert", verbose=False)
    return list(models)


def measure(kind: str, d: str, batch: int) -> dict:
    """Runs in a fresh process: ``python -m bench.runtimes --measure KIND DIR BATCH``."""
    t0 = time.perf_counter()
    import numpy as np
    if kind == "onnx":
        import onnxruntime as ort
    elif kind == "litert":
        from ai_edge_litert.interpreter import Interpreter
    else:
        os.environ.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
        import keras  # noqa: F401
    t1 = time.perf_counter()
    if kind == "onnx":
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        s = ort.InferenceSession(f"{d}/model.onnx", so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        run = lambda x: s.run(None, {name: x})[0]  # noqa: E731
    elif kind == "litert":
        sys.path.insert(0, str(REPO))
        from ser_lib.runtime import litert_call
        import ser_lib.runtime as inf
        inf._THREADS = 1
        run = litert_call(Path(f"{d}/model.tflite").read_bytes())[0]
    else:
        sys.path.insert(0, str(REPO))
        from ser_lib.runtime import compiled_call
        run = compiled_call(keras.saving.load_model(f"{d}/model.keras", compile=False))
    x, ref = np.load(f"{d}/x.npy"), np.load(f"{d}/ref.npy")
    got = np.concatenate([run(x[i:i + 512]) for i in range(0, len(x), 512)])
    t2 = time.perf_counter()
    xb = np.concatenate([x] * (batch // len(x) + 1))[:batch]
    run(xb)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 3:
        run(xb)
        n += batch
    return {"import_s": round(t1 - t0, 3), "load_s": round(t2 - t1, 3),
            "windows_per_s": round(n / (time.perf_counter() - t)), "max_abs_diff": float(np.abs(got - ref).max())}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(argv[1], argv[2], int(argv[3]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    p.add_argument("--model", default=None, help="measure this artifact's model instead of the three architectures")
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    x, source = windows(Path(a.corpora) if Path(a.corpora).is_dir() else None)
    res = {"windows": list(x.shape), "source": source, "models": {}}
    with tempfile.TemporaryDirectory(prefix="ser-runtimes-") as tmp:
        names = export_models(x, Path(tmp), a.model)
        for name in names:
            d = str(Path(tmp) / name)
            for kind in ("keras", "onnx", "litert"):
                for batch in (512, 48):
                    runs = []
                    for _ in range(a.repeat):
                        out = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "bench.runtimes", "--measure",
                                              kind, d, str(batch)], cwd=REPO, capture_output=True, text=True)
                        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    best = max(runs, key=lambda r: r["windows_per_s"])
                    best["import_s"] = min(r["import_s"] for r in runs)
                    res["models"].setdefault(name, {})[f"{kind}@{batch}"] = best
                    print(name, kind, batch, best, flush=True)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
