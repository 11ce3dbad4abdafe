"""Vocal level per speech window (ser_lib/vocal_level.py): the active level and the level
against the channel's own median, on constructed frames and through ``ser predict``'s scoring."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_lib.speech import RMS_DB_COLUMN
from ser_lib.synth import silence, speech_like
from ser_lib.vocal_level import active_level_db, relative_level_db


def test_active_level_is_the_power_mean_of_the_active_frames():
    feats = np.zeros((3, 4, RMS_DB_COLUMN + 2), np.float32)
    feats[:, :, RMS_DB_COLUMN] = [[-20, -30, -80, -20], [-40, -40, -40, -40], [-10, -10, -10, -10]]
    active = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    got = active_level_db(feats, active)
    want0 = 10 * np.log10((2 * 10 ** -2 + 10 ** -3) / 3)  # the pause (-80 dB) does not count
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:2], [want0, -40], atol=1e-4)
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="do not match"):
        active_level_db(feats, active[:, :3])


def test_relative_level_is_against_the_channels_median_speech_window():
    level = np.array([-30, -24, np.nan, -36, -20, -30], np.float32)
    speech = np.array([1, 1, 1, 1, 0, 1], bool)
    lvl, rel = relative_level_db(level, speech)
    # speech windows with a level: -30, -24, -36, -30 -> median -30; window 4 is not speech
    np.testing.assert_allclose(lvl[[0, 1, 3, 5]], [-30, -24, -36, -30])
    np.testing.assert_allclose(rel[[0, 1, 3, 5]], [0, 6, -6, 0])
    assert np.isnan(lvl[[2, 4]]).all() and np.isnan(rel[[2, 4]]).all()
    lvl, rel = relative_level_db(level, np.zeros(6, bool))
    assert np.isnan(lvl).all() and np.isnan(rel).all()


def _raised_voice(path, gain_db: float = 0.0) -> None:
    """One speaker at -30 dBFS, then 12 dB louder, then back, with pauses: 8 kHz mono."""
    rng = np.random.default_rng(21)
    parts = [speech_like(8.0, 8000, rng, level_db=-30), silence(1.0, 8000, rng, -75),
             speech_like(8.0, 8000, rng, level_db=-18), silence(1.0, 8000, rng, -75),
             speech_like(8.0, 8000, rng, level_db=-30)]
    y = np.concatenate(parts) * 10 ** (gain_db / 20)
    sf.write(path, y.astype(np.float32), 8000, subtype="FLOAT")


def test_a_raised_voice_reads_about_its_gain_above_the_channel_and_any_file_gain_cancels(tmp_path):
    from ser_lib.one_recording import predict_file

    res = {}
    for gain in (0.0, -15.0):
        _raised_voice(tmp_path / f"call{gain}.wav", gain)
        segs = [s for s in predict_file(str(tmp_path / f"call{gain}.wav"))["segments"] if s["is_speech"]]
        res[gain] = segs
    segs = res[0.0]
    mid = [s for s in segs if s["start_s"] >= 9.5 and s["end_s"] <= 17.5]   # inside the loud part
    calm = [s for s in segs if s["end_s"] <= 8.0 or s["start_s"] >= 18.5]
    assert mid and calm
    assert np.median([s["level_rel_db"] for s in mid]) == pytest.approx(12.0, abs=2.0)
    assert np.median([s["level_rel_db"] for s in calm]) == pytest.approx(0.0, abs=2.0)
    assert np.median([s["level_db"] for s in calm]) == pytest.approx(-30.0, abs=4.0)
    quiet = {s["segment_index"]: s for s in res[-15.0]}
    same = [(s, quiet[s["segment_index"]]) for s in segs if s["segment_index"] in quiet]
    assert len(same) >= 0.9 * len(segs)
    np.testing.assert_allclose([b["level_rel_db"] for _, b in same], [a["level_rel_db"] for a, _ in same], atol=0.5)
    np.testing.assert_allclose([b["level_db"] - a["level_db"] for a, b in same], -15.0, atol=0.5)
