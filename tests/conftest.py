"""Shared fixtures: generated audio, a tiny model artifact, a local Spark session."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ser_lib.synth import silence, speech_like  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write_call(path: Path, sr: int, channels: list[list[tuple[str, float]]], subtype: str = "PCM_16",
               seed: int = 0, shape=None) -> Path:
    """Write a recording whose channels are sequences of ("speech"|"silence", seconds).

    ``shape``: if given, parts of any other kind than ``speech`` and ``silence`` are
    speech-like sound passed through ``shape(kind, samples, sr)``; without it they are silence."""
    rng = np.random.default_rng(seed)
    data = []
    for parts in channels:
        chunks = []
        for kind, d in parts:
            if kind == "speech" or (shape is not None and kind != "silence"):
                y = speech_like(d, sr, rng)
                chunks.append(y if kind == "speech" else shape(kind, y, sr))
            else:
                chunks.append(silence(d, sr, rng))
        data.append(np.concatenate(chunks))
    n = min(len(c) for c in data)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([c[:n] for c in data], axis=1), sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A small, untrained but valid model artifact (fast to load in Spark workers)."""
    import keras

    from ser_lib import artifact as art
    from ser_lib.features import FeatureConfig
    from ser_lib.labels import EMOTIONS
    from ser_lib.speech import SpeechConfig

    keras.utils.set_random_seed(0)
    fc = FeatureConfig()
    inp = keras.Input((fc.frames_per_window, fc.n_features))
    x = keras.layers.Conv1D(8, 5, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(len(EMOTIONS), activation="softmax")(x))
    rng = np.random.default_rng(0)
    meta = art.ArtifactMeta("tiny-test-1", list(EMOTIONS), fc, SpeechConfig(),
                            rng.normal(size=fc.n_features).astype(np.float32),
                            rng.uniform(1, 2, size=fc.n_features).astype(np.float32))
    return art.save(tmp_path_factory.mktemp("artifact") / "tiny", model, meta)


def _java_ok() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession configured like the job's (skips without Java)."""
    if not _java_ok():
        pytest.skip("Spark tests need Java 17 (java on PATH or JAVA_HOME)")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from jobs.analyze_calls import build_spark
    from jobs.spark_config import SparkConfig

    cfg = SparkConfig.load(None, {"settings": {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"}})
    session = build_spark(cfg, master="local[2]")
    yield session
    session.stop()


#: The user documentation: the README (one screen) and the pages of docs/, in this order.
DOC_FILES = ["README.md", "docs/running.md", "docs/nightly-operation.md", "docs/cluster.md", "docs/output-tables.md",
             "docs/queries.md", "docs/web.md", "docs/configuration.md", "docs/model.md", "docs/demo-calls.md",
             "docs/how-it-works.md", "docs/development.md"]


def doc_text() -> str:
    """The README and every page of docs/ (tests run the commands and queries they show)."""
    missing = sorted(set(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")) - set(DOC_FILES))
    assert not missing, f"docs pages not in DOC_FILES (their commands would go untested): {missing}"
    return "\n\n".join((REPO / f).read_text() for f in DOC_FILES)


def doc_section(heading: str) -> str:
    """The text under a ``## heading`` of the docs, up to the next ``## `` heading."""
    return doc_text().split(heading, 1)[1].split("\n## ", 1)[0]


def readme_sql_blocks() -> dict[str, list[str]]:
    """The ```sql blocks of docs/queries.md, by engine, split into statements (comment-only
    pieces dropped); the README's one query is checked to be one of them."""
    out = {}
    for block in re.findall(r"```sql\n(.*?)```", (REPO / "docs" / "queries.md").read_text(), flags=re.S):
        statements = [s.strip() for s in block.split(";")]
        statements = [s for s in statements if any(ln.strip() and not ln.strip().startswith("--")
                                                   for ln in s.splitlines())]
        out["spark" if "USING parquet" in block else "duckdb"] = statements
    return out


def config_leaves(d: dict, where: str = ""):
    """``(dotted.key, value)`` for every leaf of a nested configuration dict, tuples as
    lists (YAML has none): compares a YAML file with the code's defaults."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from config_leaves(v, f"{where}{k}.")
        else:
            yield f"{where}{k}", list(v) if isinstance(v, tuple) else v
