"""A patient's window in memory: samples placed by absolute index, the newest hour kept, views stable."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.state.windows import PatientWindow

CAPACITY_S = 10.0  # 40 samples at 4 Hz: the buffer moves often


class IndexedModel:
    """What the window must hold, kept as one value per absolute sample index."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.values, self.first, self.end = capacity, {}, None, None

    def add(self, start: int, n: int, value: float) -> bool:
        if self.end is not None and start + n <= self.end:
            return False
        if self.end is not None and start < self.end:
            n, start = n - (self.end - start), self.end
        if self.end is None or start - self.end > self.capacity:
            self.values, self.first = {}, start  # a long outage starts afresh
        self.values.update({i: value + i for i in range(start, start + n)})
        self.end = start + n
        return True

    def window(self) -> np.ndarray:
        lo = max(self.first, self.end - self.capacity)
        return np.array([self.values.get(i, np.nan) for i in range(lo, self.end)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-30, 60), st.integers(1, 30)), min_size=1, max_size=40))
def test_the_window_holds_the_newest_samples_by_index(steps: list[tuple[int, int]]) -> None:
    """Duplicates add nothing, overlaps keep the new tail, gaps are NaN (no data, not FHR 0), a gap longer
    than the window starts afresh, and only the newest ``capacity`` samples stay."""
    window, model = PatientWindow("p", "b", CAPACITY_S), IndexedModel(int(CAPACITY_S * 4))
    cursor = 0
    for offset, n in steps:
        start = cursor + offset
        value = 1000.0 + len(model.values)  # never NaN, which marks a gap
        fhr = value + np.arange(start, start + n, dtype=float)
        new = window.add(start, fhr, fhr + 0.5, fhr + 0.25)
        assert (new is not None) == model.add(start, n, value)
        cursor = max(cursor, start + n)
        expected = model.window()
        assert window.end_index == model.end
        np.testing.assert_array_equal(window.fhr, expected)
        np.testing.assert_array_equal(window.uc, expected + 0.5)  # NaN stays NaN: no channel arrived
        np.testing.assert_array_equal(window.mhr, expected + 0.25)


def test_arrays_handed_out_keep_their_values_while_the_window_moves_on() -> None:
    window = PatientWindow("p", "b", CAPACITY_S)
    window.add(0, np.full(40, 120.0), np.zeros(40), None)
    fhr, _uc, _mhr, t0 = window.last(CAPACITY_S)
    held = fhr.copy()
    for k in range(40, 400, 4):  # the window fills its buffer and moves to new ones many times
        window.add(k, np.full(4, 150.0), np.zeros(4), None)
    np.testing.assert_array_equal(fhr, held)
    assert t0 == 0.0 and window.fhr.size == 40 and (window.fhr == 150.0).all()
