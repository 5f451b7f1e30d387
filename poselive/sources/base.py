"""What every source is: `FrameSource` (iterate once for Frames; close; stop from another thread), its
`SourceStatus`, the `RetryPolicy` live sources reopen by, and real-time pacing."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from poselive.errors import SourceError
from poselive.records import Frame


# FFmpeg writes its own lines to stderr ("moov atom not found", "header damaged") beside the one-line messages
# these sources give, which already say what is wrong. OpenCV reads this when its FFmpeg backend first starts
# (-8 is FFmpeg's AV_LOG_QUIET); a value someone set themselves (to debug FFmpeg) wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# A header's frame count may be off by a frame or so (edit lists, a last partial frame); a video that ends
# further from it than this is reported as truncated or corrupt.
FRAME_COUNT_TOLERANCE = 2
DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class SourceStatus:
    """What a source is doing, for the app to show. state: "ok", "lost" (a live source stopped delivering
    and is being reopened), "ended" (no more frames), "failed" (gave up; `message` says why) or "closed".
    retry_in_s: seconds until the next reopen attempt while lost."""
    state: str
    message: str = ""
    retry_in_s: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Reopening a lost live source: wait first_delay_s, doubling each failed attempt up to max_delay_s;
    give up (SourceError) after max_attempts failed reopens in a row, or never when it is None."""
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_attempts: int | None = None

    def delay_s(self, attempt: int) -> float:
        """Wait before reopen attempt `attempt` (0-based)."""
        return min(self.first_delay_s * 2.0 ** attempt, self.max_delay_s)


class FrameSource:
    """Base of every source: iterate once for `Frame`s; `close()` releases the device or file (also on
    `with` exit). `stop()` may be called from another thread: iteration then ends at the next frame and any
    pacing or back-off wait is cut short.

    Attributes: name (for messages, e.g. "camera 0", "video clip.mp4"), fps (nominal frames per second, or
    None when unknown), frame_count (None for live or unknown), is_live (frames arrive on their own clock, so
    a slow consumer should drop stale ones: cameras, streams, and files or synthetic scenes paced in real
    time), status (a SourceStatus)."""

    def __init__(self, name: str, fps: float | None, is_live: bool, frame_count: int | None = None):
        self.name = name
        self.fps = fps
        self.is_live = is_live
        self.frame_count = frame_count
        self.status = SourceStatus("ok")
        self._stop_event = threading.Event()
        self._iterated = False
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise SourceError(f"{self.name} was already read once; open it again to start over.")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def close(self) -> None:
        self.stop()
        if not self._closed:
            self._closed = True
            self._release()
            if self.status.state in ("ok", "lost"):
                self.status = SourceStatus("closed")

    def _release(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Pacer:
    """Sleeps so that frames come out at their video_time, measured from the first one (real-time playback)."""

    def __init__(self, stop_event: threading.Event):
        self._stop_event = stop_event
        self._t0: float | None = None

    def wait_until(self, video_time: float) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - video_time
        delay = self._t0 + video_time - now
        if delay > 0:
            self._stop_event.wait(delay)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A decoded 8-bit image (grey, BGR or BGRA) -> (H, W, 3) uint8 BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
