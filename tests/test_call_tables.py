"""calls/, episodes/ and turns/ written in bounded batches (the driver never holds every call's
summary): a run whose batches hold 2 calls writes the same tables as one whole batch."""
from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_call

pytestmark = pytest.mark.spark
NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def calls_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calls")
    for i in range(5):
        write_call(d / f"b{i % 2}" / f"call_{i}.wav", 8000,
                   [[("speech", 2.5 + i), ("silence", 1.5), ("speech", 2.0)]], seed=10 + i)
    write_call(d / "a_silent.wav", 8000, [[("silence", 3.0)]], seed=20)
    (d / "b0" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    return d


def _run(spark, calls_dir, tiny_artifact, out, monkeypatch, batch_calls=None):
    from jobs import analyze_calls as ac
    if batch_calls:
        monkeypatch.setattr(ac, "write_call_tables", functools.partial(ac.write_call_tables, batch_calls=batch_calls))
    summary = ac.run(str(calls_dir), str(out), model_path=str(tiny_artifact), spark=spark, now=NOW,
                     run_id="batches")
    monkeypatch.undo()
    return summary


def _files(out, table):
    return sorted((out / table).rglob("*.parquet"))


def test_batched_call_tables_equal_one_batch(spark, calls_dir, tiny_artifact, tmp_path, monkeypatch):
    whole = _run(spark, calls_dir, tiny_artifact, tmp_path / "whole", monkeypatch)
    small = _run(spark, calls_dir, tiny_artifact, tmp_path / "small", monkeypatch, batch_calls=2)
    assert whole["processed"] == small["processed"] == 6 and whole["failed"] == small["failed"] == 1
    for table in ("calls", "episodes", "turns"):
        a, b = _files(tmp_path / "whole", table), _files(tmp_path / "small", table)
        assert len(a) == len(b) == 1, (a, b)
        ta, tb = pq.read_table(a[0]), pq.read_table(b[0])
        assert ta.schema == tb.schema
        assert tb.num_rows == ta.num_rows > 0
        if table == "calls":
            assert pq.ParquetFile(b[0]).metadata.num_row_groups >= 3  # 7 calls, 2 per batch
        pd.testing.assert_frame_equal(tb.to_pandas(), ta.to_pandas())
    calls = pq.read_table(_files(tmp_path / "small", "calls")[0]).to_pandas()
    # in source order, the corrupt recording (no summary) among them, every summary present
    analysed = calls[calls["status"] == "ok"]
    assert list(analysed["source_path"]) == sorted(analysed["source_path"])
    assert set(calls.loc[calls["status"] == "failed", "source_path"].str.rsplit("/", n=1).str[1]) == {"corrupt.wav"}
    assert analysed["timeline"].map(len).gt(0).all() and analysed["dominant_emotion"].notna().sum() >= 5
    # every summary column came through, e.g. n_segments = the call's segment rows
    segments = pd.read_parquet(tmp_path / "small" / "segments")
    counts = segments.groupby("call_id").size()
    assert (analysed.set_index("call_id")["n_segments"].loc[counts.index] == counts).all()
    assert analysed["n_segments"].notna().all()
