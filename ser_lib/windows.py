"""Fixed-length analysis windows over a channel.

Policy (the job and the training data use it alike):

* Windows are ``window_s`` long and start every ``hop_s`` seconds from 0.
* Every start is a whole number of feature frame hops, so a window's frames are
  exactly a slice of the channel's frames (see :mod:`ser_lib.features`).
* **Last partial window**: when the regular grid leaves an uncovered tail, one more
  window is added that ends at the recording's end (its start rounded *down* to the
  frame grid, so it ends at most one frame hop before the last sample). It overlaps
  its predecessor more than the hop; no window is ever zero-padded except below.
* **Shorter than one window**: one segment starting at 0, padded with trailing
  zeros to ``window_s`` for the features; its ``end_s`` is the true duration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class WindowGrid:
    """Window geometry in samples at one sample rate.

    Attributes:
        sample_rate: Hz.
        window: window length, samples.
        hop: distance between window starts, samples.
        frame_hop: feature frame hop, samples; ``window`` and ``hop`` are multiples of it.
    """

    sample_rate: int
    window: int
    hop: int
    frame_hop: int

    @classmethod
    def from_seconds(cls, window_s: float, hop_s: float, sample_rate: int, frame_hop: int) -> "WindowGrid":
        """Build a grid from seconds.

        Raises:
            ConfigError: if a length is not positive, or not a whole number of frame hops.
        """
        if window_s <= 0 or hop_s <= 0:
            raise ConfigError(f"window_s and hop_s must be > 0 (got {window_s}, {hop_s})")
        window = round(window_s * sample_rate)
        hop = round(hop_s * sample_rate)
        for name, secs, n in (("window_s", window_s, window), ("hop_s", hop_s, hop)):
            if abs(n - secs * sample_rate) > 1e-6 * sample_rate or n % frame_hop:
                raise ConfigError(
                    f"{name}={secs} s is not a whole number of feature frame hops "
                    f"({frame_hop} samples = {frame_hop / sample_rate * 1000:g} ms at {sample_rate} Hz)"
                )
        return cls(sample_rate, window, hop, frame_hop)

    def starts(self, n_samples: int) -> np.ndarray:
        """Start sample of every window of a channel of ``n_samples`` samples.

        Returns:
            ``np.ndarray[shape=(n_windows,), dtype=int64]``, increasing, never empty
            (a channel shorter than one window, even an empty one, yields ``[0]``).
        """
        if n_samples <= self.window:
            return np.zeros(1, dtype=np.int64)
        starts = np.arange(0, n_samples - self.window + 1, self.hop, dtype=np.int64)
        last = (n_samples - self.window) // self.frame_hop * self.frame_hop
        if last > starts[-1]:
            starts = np.append(starts, last)
        return starts

    def bounds_s(self, n_samples: int, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(start_s, end_s)`` of windows, seconds, ``float64 (n_windows,)``; each end is
        clipped to ``n_samples`` (a window shorter than the grid's ends at the channel's end).

        Args:
            n_samples: the channel's samples (for a stream, those seen so far: a window
                emitted before the end lies inside them).
            starts: ``int64 (n_windows,)`` start samples of the windows to bound; default
                every window of the channel (:meth:`starts`).
        """
        if starts is None:
            starts = self.starts(n_samples)
        ends = np.minimum(starts + self.window, max(n_samples, 0))
        return starts / self.sample_rate, ends / self.sample_rate
