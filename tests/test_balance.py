"""Balanced analysis tasks (jobs/balance.py, jobs.analyze_calls.extract)."""
import os
import threading

import numpy as np
import pytest
import soundfile as sf

from jobs.balance import FALLBACK_BYTES_PER_S, balanced_bins, task_cost


def _loads(bins, costs):
    return [sum(costs[i] for i in b) for b in bins]


def test_every_item_lands_in_exactly_one_non_empty_bin():
    costs = [5.0, 1.0, 3.0, 3.0, 0.0, 2.0, 8.0]
    for n in (1, 2, 3, 7, 20):
        bins = balanced_bins(costs, n)
        assert len(bins) == min(n, len(costs))
        assert all(bins) and sorted(i for b in bins for i in b) == list(range(len(costs)))
        assert all(b == sorted(b) for b in bins)
    assert balanced_bins([], 4) == []


def test_one_long_call_and_many_short_ones_are_split_evenly():
    # hash partitioning can put the long call beside half the short ones; LPT must not
    costs = [6.0] + [1.0] * 6
    bins = balanced_bins(costs, 2)
    assert sorted(_loads(bins, costs)) == [6.0, 6.0]
    assert [0] in bins


@pytest.mark.parametrize("seed", range(5))
def test_busiest_bin_within_grahams_bound(seed):
    # Graham (1969): LPT's makespan <= (4/3 - 1/(3m)) of the optimum, and the optimum is at
    # least max(largest item, mean load)
    rng = np.random.default_rng(seed)
    costs = list(rng.lognormal(0, 1, size=40))
    for m in (2, 3, 4):
        bound = max(max(costs), sum(costs) / m) * (4 / 3 - 1 / (3 * m))
        assert max(_loads(balanced_bins(costs, m), costs)) <= bound + 1e-9


def test_bad_bin_count():
    with pytest.raises(ValueError, match="n_bins"):
        balanced_bins([1.0], 0)


def _task(path, kind="file", size=None):
    size = os.path.getsize(path) if size is None else size
    return {"task_kind": kind, "source_path": str(path), "size_bytes": size}


def test_cost_is_channel_seconds_from_the_header(tmp_path):
    mono, stereo = tmp_path / "mono16k.wav", tmp_path / "stereo8k.wav"
    sf.write(mono, np.zeros(16000 * 3, np.float32), 16000, subtype="PCM_16")
    sf.write(stereo, np.zeros((8000 * 3, 2), np.float32), 8000, subtype="ULAW")
    assert task_cost(_task(mono)) == pytest.approx(3.0)
    # half the bytes of the mono file, twice its work
    assert os.path.getsize(stereo) < os.path.getsize(mono)
    assert task_cost(_task(stereo)) == pytest.approx(6.0)


def test_cost_falls_back_to_the_size(tmp_path):
    junk = tmp_path / "notes.wav"
    junk.write_bytes(b"not audio" * 1000)
    assert task_cost(_task(junk)) == pytest.approx(9000 / FALLBACK_BYTES_PER_S)
    # missing file, remote store, archive (never opened on the driver), missing size
    assert task_cost(_task(tmp_path / "gone.wav", size=64000)) == pytest.approx(2.0)
    assert task_cost(_task("s3://bucket/a.wav", size=64000)) == pytest.approx(2.0)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000 * 10, np.float32), 16000)
    assert task_cost(_task(wav, kind="archive", size=32000)) == pytest.approx(1.0)
    assert task_cost({"task_kind": "file", "source_path": "s3://b/x.wav", "size_bytes": None}) == 0.0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_cost_of_a_pipe_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    out = []
    t = threading.Thread(target=lambda: out.append(task_cost(_task(fifo, size=0))), daemon=True)
    t.start()
    t.join(10)
    assert out == [0.0]


def test_extract_keeps_the_balanced_assignment(spark, tmp_path):
    from jobs.analyze_calls import extract
    paths = []
    for i, (sr, ch, s) in enumerate([(8000, 2, 12), (16000, 1, 4), (16000, 1, 4), (16000, 1, 4),
                                     (8000, 1, 2), (16000, 2, 3), (16000, 1, 8)]):
        p = tmp_path / f"call{i}.wav"
        sf.write(p, np.zeros((sr * s, ch), np.float32), sr, subtype="PCM_16")
        paths.append(p)
    tasks = [dict(_task(p), modified=None, prior=None) for p in paths]
    df = extract(spark, tasks, 2)
    parts = df.rdd.glom().map(lambda rows: sorted(r.source_path for r in rows)).collect()
    want = sorted(sorted(str(paths[i]) for i in b) for b in balanced_bins([task_cost(t) for t in tasks], 2))
    assert sorted(parts) == want
    loads = sorted(sum(task_cost(t) for t in tasks if t["source_path"] in part) for part in parts)
    assert loads == [26.0, 26.0]  # 24 + 4 + 4 + 4 + 2 + 6 + 8 = 52 channel-seconds
    assert df.count() == len(tasks)
