"""Clocks the live path reads: per-stage milliseconds of one frame (`StageTimer`, whose `ms` becomes the
frame's `records.StageTimes`) and the loop's frame rate (`FpsMeter`)."""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator


class StageTimer:
    """Milliseconds per named stage; a stage timed twice in one frame adds up."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t) * 1000.0


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30):
        self._t: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self._t.append(time.perf_counter())
        if len(self._t) < 2:
            return 0.0
        return (len(self._t) - 1) / max(self._t[-1] - self._t[0], 1e-9)
