"""The small typed records that pass between pipeline stages. Coordinates are original-image px (0-based pixel
centres) unless a docstring says otherwise. Every record with points (a Person's keypoints, a Face's landmarks)
holds them as `points`, so tracking, smoothing and output treat both alike."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Frame:
    """One captured image. image: (H, W, 3) uint8 BGR; index: frame number in its source (0-based);
    capture_time: time.monotonic() seconds when it was grabbed (for latency); video_time: seconds into the
    source (frame index / fps for files, since opening for cameras): the clock outputs report and motion
    filters run on. No default: frames that all said 0.0 would look to a filter like no time passing."""
    image: np.ndarray
    index: int
    capture_time: float
    video_time: float


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Person:
    """One body. points: (17, 3) float32 x, y in image px and score in [0, 1] (COCO-17 order; also known as
    `keypoints`); bbox: (x, y, w, h) image px; score: person confidence; track_id: stable id from tracking (-1
    before tracking)."""
    points: np.ndarray
    bbox: tuple[float, float, float, float]
    score: float
    track_id: int = -1

    @property
    def keypoints(self) -> np.ndarray:
        """`points`, by the name COCO gives a body's points."""
        return self.points


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees: yaw (left/right turn), pitch (nod), roll (tilt), camera frame."""
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Face:
    """One face. points: (68, 3) float32 x, y in image px and score (iBUG order; also known as `landmarks`);
    bbox: (x, y, w, h) image px; head_pose: None when the fit failed; rvec/tvec: solvePnP's rotation and
    translation (camera frame) for drawing axes."""
    points: np.ndarray
    bbox: tuple[float, float, float, float]
    score: float
    head_pose: HeadPose | None = None
    rvec: np.ndarray | None = None
    tvec: np.ndarray | None = None
    track_id: int = -1

    @property
    def landmarks(self) -> np.ndarray:
        """`points`, by the name a face's points go by."""
        return self.points


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per pipeline stage for one frame."""
    ms: dict[str, float] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return float(sum(self.ms.values()))
