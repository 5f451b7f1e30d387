"""Timing helpers the benchmarks share: seconds per call (wall clock or the calling thread's CPU time) and
their median and 90th percentile in ms."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """(median, p90) in ms."""
    a = np.asarray(seconds) * 1e3
    return float(np.median(a)), float(np.percentile(a, 90))


def time_calls(fn: Callable[[], object], repeats: int, warmup: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds per call of `fn` by `clock`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def thread_time_calls(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """CPU seconds of the calling thread per call of `fn` (other processes on the cores do not count)."""
    return time_calls(fn, repeats, warmup, time.thread_time)
