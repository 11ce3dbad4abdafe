import numpy as np
import pytest

from ser_lib.errors import ConfigError
from ser_lib.windows import WindowGrid


@pytest.mark.parametrize("sr,frame_hop", [(8000, 80), (16000, 160)])
@pytest.mark.parametrize("window_s,hop_s", [(2.0, 1.0), (2.0, 2.0), (2.0, 0.5), (3.0, 1.5)])
@pytest.mark.parametrize("duration_s", [0.0, 0.3, 1.999, 2.0, 2.005, 3.5, 10.0, 61.37])
def test_windows_cover_the_recording(sr, frame_hop, window_s, hop_s, duration_s):
    grid = WindowGrid.from_seconds(window_s, hop_s, sr, frame_hop)
    n = int(round(duration_s * sr))
    starts = grid.starts(n)
    start_s, end_s = grid.bounds_s(n)
    assert starts[0] == 0 and np.all(np.diff(starts) > 0)
    assert np.all(starts % frame_hop == 0), "every window starts on the frame grid"
    assert np.all(end_s <= duration_s + 1e-9) and np.all(start_s >= 0)
    if n <= grid.window:
        assert len(starts) == 1 and end_s[0] == pytest.approx(duration_s)
        return
    assert np.all(starts + grid.window <= n), "no window runs past the end"
    regular = starts[:-1] if len(starts) > 1 else starts
    assert np.all(np.diff(regular) == grid.hop)
    # the last window ends within one frame hop of the end: the tail is covered
    assert n - (starts[-1] + grid.window) < frame_hop
    # count: the regular grid, plus one end-aligned window only if the grid leaves a tail
    n_regular = (n - grid.window) // grid.hop + 1
    tail = n - ((n_regular - 1) * grid.hop + grid.window)
    assert len(starts) == n_regular + (1 if tail >= frame_hop else 0)


def test_exact_boundaries():
    grid = WindowGrid.from_seconds(2.0, 1.0, 8000, 80)
    start_s, end_s = grid.bounds_s(int(4.5 * 8000))
    assert list(start_s) == [0.0, 1.0, 2.0, 2.5]
    assert list(end_s) == [2.0, 3.0, 4.0, 4.5]
    start_s, end_s = grid.bounds_s(int(1.2 * 8000))
    assert list(start_s) == [0.0] and list(end_s) == [1.2]


def test_bounds_of_some_windows_are_those_windows_bounds():
    """A stream bounds the windows it emits as they complete, against the samples seen so far."""
    grid = WindowGrid.from_seconds(2.0, 1.0, 8000, 80)
    n = int(7.3 * 8000)
    start_s, end_s = grid.bounds_s(n)
    starts = grid.starts(n)
    for k in (slice(0, 2), slice(2, 5), slice(5, None)):
        seen = n if k.stop is None else int(starts[k][-1] + grid.window)
        got = grid.bounds_s(seen, starts[k])
        np.testing.assert_array_equal(got[0], start_s[k])
        np.testing.assert_array_equal(got[1], end_s[k])


@pytest.mark.parametrize("window_s,hop_s", [(2.0, 0.015), (2.005, 1.0), (0, 1.0), (2.0, -1)])
def test_off_grid_or_invalid_lengths_are_refused(window_s, hop_s):
    with pytest.raises(ConfigError):
        WindowGrid.from_seconds(window_s, hop_s, 8000, 80)
