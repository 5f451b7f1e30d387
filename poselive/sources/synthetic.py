"""`SyntheticSource`: generated frames of walking stick figures and moving shapes, with their true keypoints
(for tests and benchmarks without a camera)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from poselive.errors import SourceError
from poselive.records import Frame
from poselive.schemas import COCO17
from poselive.sources.base import FrameSource, Pacer, SourceStatus


# ------------------------------------------------------------------------------------------------ synthetic
@dataclass(frozen=True)
class _Walker:
    height_frac: float   # body height as a fraction of the frame height
    speed_frac: float    # horizontal speed in frame widths per second (sign = direction)
    start_frac: float    # starting x as a fraction of the frame width
    ground_frac: float   # y of the feet as a fraction of the frame height
    colour: tuple[int, int, int]
    phase: float


_WALKERS = (
    _Walker(0.62, 0.22, 0.15, 0.92, (60, 200, 255), 0.0),
    _Walker(0.52, -0.18, 0.85, 0.86, (255, 160, 80), 1.7),
    _Walker(0.45, 0.12, 0.50, 0.80, (120, 255, 120), 3.1),
)


class SyntheticSource(FrameSource):
    """Deterministic generated frames: 1-3 stick figures walking across a gradient with drifting shapes.
    `keypoints(index)` gives the exact COCO-17 keypoints drawn in that frame, (P, 17, 3) float32 image px
    with score 1, so tests of tracking, smoothing and drawing have a ground truth."""

    def __init__(self, frames: int = 300, fps: float = 30.0, size: tuple[int, int] = (640, 480),
                 people: int = 2, realtime: bool = False):
        if not 0 <= people <= len(_WALKERS):
            raise SourceError(f"synthetic scenes have 0 to {len(_WALKERS)} people, not {people}.")
        super().__init__(f"synthetic {size[0]}x{size[1]}", float(fps), is_live=realtime, frame_count=frames)
        self.size = (int(size[0]), int(size[1]))
        self.people = people
        w, h = self.size
        # Background computed once: a vertical gradient with a faint grid.
        ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        top, bottom = np.array([70, 50, 40], np.float32), np.array([150, 140, 120], np.float32)
        self._background = np.broadcast_to(top * (1 - ys) + bottom * ys, (h, w, 3)).astype(np.uint8)
        self._background[:: max(h // 12, 1)] = 90
        self._background[:, :: max(w // 16, 1)] = 90

    def keypoints(self, index: int) -> np.ndarray:
        """(P, 17, 3) float32: x, y in image px and score 1 for every walker in frame `index`."""
        return np.stack([self._pose(wk, index / self.fps) for wk in _WALKERS[: self.people]]) \
            if self.people else np.zeros((0, COCO17.num_keypoints, 3), np.float32)

    def _pose(self, wk: _Walker, t: float) -> np.ndarray:
        w, h = self.size
        body = wk.height_frac * h
        # Bounce between the frame edges: a triangle wave of the travelled distance.
        span = w * 0.8
        travelled = (wk.start_frac - 0.1) * w + wk.speed_frac * w * t
        pos = travelled % (2 * span)
        x = 0.1 * w + (pos if pos < span else 2 * span - pos)
        swing = 0.5 * math.sin(2 * math.pi * 1.2 * t + wk.phase)
        ground = wk.ground_frac * h
        pelvis = np.array([x, ground - 0.5 * body])
        neck = pelvis - [0, 0.3 * body]
        nose = neck - [0, 0.12 * body]
        k = np.zeros((17, 2))
        k[0] = nose
        k[1], k[2] = nose + [0.025 * body, -0.02 * body], nose + [-0.025 * body, -0.02 * body]
        k[3], k[4] = nose + [0.05 * body, -0.005 * body], nose + [-0.05 * body, -0.005 * body]
        # Facing the camera: the subject's left is the image's right.
        for side, (sh, el, wr, hip, kn, an) in ((1, (5, 7, 9, 11, 13, 15)), (-1, (6, 8, 10, 12, 14, 16))):
            s = swing * side
            k[sh] = neck + [side * 0.11 * body, 0.01 * body]
            k[el] = k[sh] + 0.16 * body * np.array([0.3 * side + 0.5 * math.sin(s), math.cos(s)])
            k[wr] = k[el] + 0.14 * body * np.array([0.15 * side + 0.7 * math.sin(1.4 * s), math.cos(1.4 * s)])
            k[hip] = pelvis + [side * 0.07 * body, 0]
            k[kn] = k[hip] + 0.24 * body * np.array([math.sin(-s), math.cos(s)])
            k[an] = k[kn] + 0.24 * body * np.array([math.sin(-0.6 * s), math.cos(0.6 * s)])
        return np.concatenate([k, np.ones((17, 1))], axis=1).astype(np.float32)

    def render(self, index: int) -> np.ndarray:
        """The image of frame `index`: (H, W, 3) uint8 BGR."""
        w, h = self.size
        t = index / self.fps
        image = self._background.copy()
        for i, colour in enumerate(((40, 40, 220), (40, 200, 220), (200, 60, 200))):
            cx = int((0.5 + 0.4 * math.sin(0.7 * t + 2.1 * i)) * w)
            cy = int((0.25 + 0.15 * math.cos(1.1 * t + i)) * h)
            r = int(0.04 * h * (1 + i * 0.3))
            if i == 1:
                cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1, cv2.LINE_AA)
            else:
                cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
        thick = max(2, round(h / 90))
        for wk, pose in zip(_WALKERS[: self.people], self.keypoints(index)):
            pts = [(int(round(x * 16)), int(round(y * 16))) for x, y in pose[:, :2]]
            for a, b in COCO17.skeleton:
                cv2.line(image, pts[a], pts[b], wk.colour, thick, cv2.LINE_AA, shift=4)
            head_r = int(0.06 * wk.height_frac * h * 16)
            cv2.circle(image, pts[0], head_r, wk.colour, thick, cv2.LINE_AA, shift=4)
        return image

    def _frames(self) -> Iterator[Frame]:
        pacer = Pacer(self._stop_event) if self.is_live else None
        for index in range(self.frame_count or 0):
            if self.stopping:
                return
            video_time = index / self.fps
            image = self.render(index)
            if pacer is not None:
                pacer.wait_until(video_time)
            yield Frame(image=image, index=index, capture_time=time.monotonic(), video_time=video_time)
        self.status = SourceStatus("ended", f"{self.name}: {self.frame_count} frames generated.")
