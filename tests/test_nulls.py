import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ser_lib.nulls import is_missing, none_if_missing


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), np.float64("nan"), pd.NA, pd.NaT,
                                   np.datetime64("NaT")])
def test_empty_cells_are_missing(value):
    assert is_missing(value) and none_if_missing(value) is None


@pytest.mark.parametrize("value", [0, 0.0, np.float32(0.5), -1, "", "nan", "angry", [], [None], {}, (),
                                   np.array([np.nan]), np.zeros(0), pd.Timestamp(0, tz="UTC"),
                                   dt.datetime(2026, 1, 1), False])
def test_values_are_kept(value):
    assert not is_missing(value) and none_if_missing(value) is value
