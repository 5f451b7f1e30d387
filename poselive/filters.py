"""Temporal smoothing of keypoints: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A first-order low-pass whose cutoff rises with speed: at rest the cutoff is `min_cutoff` (Hz) and jitter is
averaged away; when the point moves, the cutoff grows by `beta` x speed, so lag stays small. Speed is itself
low-passed at `d_cutoff` Hz. Every step uses the real time elapsed since the previous sample, so variable
frame rates and irregular timestamps are handled. Units: time in seconds, positions in whatever units the
caller uses (image px for poses), so `beta` is in 1/px.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


def smoothing_factor(dt: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """Exponential-smoothing weight of a new sample for a low-pass at `cutoff` Hz after `dt` seconds."""
    r = 2.0 * math.pi * cutoff * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """One Euro filter over an array of values, every element with its own state (value, speed, time).

    vector_axis: when given, that axis holds the coordinates of one point (e.g. -1 for (K, 2) keypoints) and
    the point's speed (the norm along it) sets one cutoff shared by its coordinates, so a diagonal move is
    smoothed like a straight one. Without it every element is a separate 1-D signal."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 vector_axis: int | None = None):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.vector_axis = vector_axis
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None    # filtered value
        self._dx: np.ndarray | None = None   # filtered derivative (units per second)
        self._t: np.ndarray | None = None    # time of each element's last update, seconds
        self._has: np.ndarray | None = None  # element has state

    def __call__(self, x: np.ndarray, t: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Filter one sample `x` (any shape, fixed between calls) taken at time `t` seconds.

        mask (broadcastable to x, bool): elements to update; the others are returned unchanged and their state
        is held (a low-confidence keypoint must not pull the filter). An element seen for the first time
        passes through and starts its state. A timestamp not after the element's last one leaves its state
        as it is and returns the current filtered value. Returns float64 of x's shape."""
        x = np.asarray(x, np.float64)
        m = np.ones(x.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), x.shape)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t, self._has = np.full(x.shape, float(t)), m.copy()
            return x.copy()
        start = m & ~self._has
        dt = t - self._t
        step = m & self._has & (dt > 0)
        dt_safe = np.where(step, dt, 1.0)
        dx = (x - self._x) / dt_safe
        dx_hat = self._dx + smoothing_factor(dt_safe, self.d_cutoff) * (dx - self._dx)
        if self.vector_axis is None:
            speed = np.abs(dx_hat)
        else:
            speed = np.broadcast_to(np.linalg.norm(dx_hat, axis=self.vector_axis, keepdims=True), x.shape)
        a = smoothing_factor(dt_safe, self.min_cutoff + self.beta * speed)
        x_hat = self._x + a * (x - self._x)

        self._x = np.where(step, x_hat, np.where(start, x, self._x))
        self._dx = np.where(step, dx_hat, np.where(start, 0.0, self._dx))
        self._t = np.where(step | start, float(t), self._t)
        self._has = self._has | start
        stale = m & ~step & ~start  # repeated or earlier timestamp: answer with what we have
        return np.where(step | start | stale, self._x, x)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of the signal being filtered, None before the first sample."""
        return None if self._x is None else self._x.shape

    def forget(self, mask: np.ndarray) -> None:
        """Drop the state of the elements in `mask` (they restart from their next sample)."""
        if self._has is not None:
            self._has = self._has & ~np.broadcast_to(np.asarray(mask, bool), self._has.shape)

    def forget_older_than(self, t: float, max_age_s: float) -> None:
        """Drop the state of elements last updated more than `max_age_s` seconds before `t`: after a long
        gap their old position says little, and pulling from it would drag the point."""
        if self._t is not None:
            self.forget(t - self._t > max_age_s)


def one_euro(values: np.ndarray, times_s: np.ndarray, min_cutoff: float = 1.0, beta: float = 0.0,
             d_cutoff: float = 1.0, vector_axis: int | None = None) -> np.ndarray:
    """Filter a whole recorded signal: values (T, ...) sampled at times_s (T,) seconds -> (T, ...) float64."""
    f = OneEuroFilter(min_cutoff, beta, d_cutoff, vector_axis)
    return np.stack([f(v, float(t)) for v, t in zip(np.asarray(values), np.asarray(times_s))])


@dataclass(frozen=True)
class SmootherConfig:
    """PoseSmoother settings. min_cutoff (Hz), beta (1/px), d_cutoff (Hz): One Euro parameters for x, y in
    image px; min_score: keypoints below it are passed through and do not update the filter; reset_after_s:
    a keypoint unseen (or below min_score) for longer restarts from its next sample instead of being pulled
    from a stale position; forget_after_s: a track absent for longer loses its filter."""
    min_cutoff: float = 1.0
    beta: float = 0.02
    d_cutoff: float = 1.0
    min_score: float = 0.3
    reset_after_s: float = 0.5
    forget_after_s: float = 1.0


class PoseSmoother:
    """One One Euro filter per track id, over that track's (K, 2) keypoint positions (one state per
    keypoint). Call once per frame with every tracked record of that frame (Person or Face):

        people = smoother(tracker.update(people, frame.index), frame.video_time)

    Records with track_id < 0 (not tracked) come back unchanged. Scores are never changed."""

    def __init__(self, config: SmootherConfig = SmootherConfig()):
        self.config = config
        self._filters: dict[int, OneEuroFilter] = {}
        self._last_seen: dict[int, float] = {}

    def __call__(self, records: list, t: float) -> list:
        """records: Person or Face list (keypoints / landmarks in image px); t: timestamp in seconds
        (Frame.video_time for files, Frame.capture_time for live). Returns the records with smoothed x, y."""
        cfg = self.config
        out = []
        for rec in records:
            if rec.track_id < 0:
                out.append(rec)
                continue
            pts = np.asarray(rec.points, np.float32)
            f = self._filters.get(rec.track_id)
            if f is None:
                f = self._filters[rec.track_id] = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff,
                                                                vector_axis=-1)
            f.forget_older_than(t, cfg.reset_after_s)
            good = (pts[:, 2] >= cfg.min_score)[:, None]
            smoothed = pts.copy()
            smoothed[:, :2] = f(pts[:, :2], t, good)
            self._last_seen[rec.track_id] = t
            out.append(dataclasses.replace(rec, points=smoothed))
        for tid in [tid for tid, seen in self._last_seen.items() if t - seen > cfg.forget_after_s]:
            del self._filters[tid], self._last_seen[tid]
        return out

    def reset(self) -> None:
        self._filters.clear()
        self._last_seen.clear()

    @property
    def track_ids(self) -> list[int]:
        """Ids that currently have a filter."""
        return sorted(self._filters)

