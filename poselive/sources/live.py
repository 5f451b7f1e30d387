"""Live sources: cameras (`open_camera`, with an OpenCV backend by name) and network streams (`open_stream`),
both a `LiveCaptureSource` that reopens with back-off when frames stop; `poselive cameras` lists what opens."""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

from poselive.errors import SourceError
from poselive.records import Frame
from poselive.sources.base import FrameSource, RetryPolicy, SourceStatus, as_bgr

log = logging.getLogger(__name__)

CAMERA_BACKENDS = {
    "any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "v4l": cv2.CAP_V4L2, "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF, "avfoundation": cv2.CAP_AVFOUNDATION, "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
}


# -------------------------------------------------------------------------------------- cameras and streams
class VideoCaptureLike(Protocol):
    """What LiveCaptureSource needs from cv2.VideoCapture (tests pass a fake)."""
    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...


class LiveCaptureSource(FrameSource):
    """A camera or network stream. `open_capture()` returns an opened-or-not cv2.VideoCapture; it is called
    once at construction (failure -> SourceError with `open_error`) and again whenever reading fails, with
    the waits of `retry` in between. While reopening, `status` is "lost" with a message such as
    "camera 0 lost, retrying in 2 s". Frame.video_time is seconds since the source was opened."""

    def __init__(self, name: str, open_capture: Callable[[], VideoCaptureLike], open_error: str,
                 retry: RetryPolicy = RetryPolicy(), fps: float | None = None):
        self._open_capture = open_capture
        self._retry = retry
        self._lock = threading.Lock()
        cap = self._try_open()
        if cap is None:
            raise SourceError(open_error)
        if fps is None:
            try:
                fps = float(cap.get(cv2.CAP_PROP_FPS)) or None  # type: ignore[attr-defined]
            except (AttributeError, cv2.error):
                fps = None
        super().__init__(name, fps, is_live=True)
        self._cap: VideoCaptureLike | None = cap
        self._t0 = time.monotonic()
        self.reconnects = 0

    def _try_open(self) -> VideoCaptureLike | None:
        try:
            cap = self._open_capture()
        except cv2.error as e:
            log.debug("opening failed: %s", e)
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        return cap

    def _read(self) -> np.ndarray | None:
        with self._lock:
            if self._cap is None or self._closed:
                return None
            try:
                ok, image = self._cap.read()
            except cv2.error as e:
                log.debug("%s: read failed: %s", self.name, e)
                ok, image = False, None
        return image if ok and image is not None and image.size else None

    def _drop_capture(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def _reopen(self) -> bool:
        """Wait and reopen until it works (True), the source is stopped (False) or the policy gives up
        (SourceError)."""
        attempt = 0
        while not self.stopping:
            if self._retry.max_attempts is not None and attempt >= self._retry.max_attempts:
                msg = (f"{self.name} was lost and did not come back after {attempt} attempts; "
                       f"check that it is connected, then start again.")
                self.status = SourceStatus("failed", msg)
                log.error(msg)
                raise SourceError(msg)
            delay = self._retry.delay_s(attempt)
            msg = f"{self.name} lost, retrying in {delay:g} s"
            self.status = SourceStatus("lost", msg, retry_in_s=delay)
            log.warning(msg)
            if self._stop_event.wait(delay):
                return False
            cap = self._try_open()
            attempt += 1
            if cap is not None:
                with self._lock:
                    if self._closed:
                        cap.release()
                        return False
                    self._cap = cap
                self.reconnects += 1
                self.status = SourceStatus("ok", f"{self.name} is back")
                log.info("%s is back after %d attempt(s)", self.name, attempt)
                return True
        return False

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while not self.stopping:
            image = self._read()
            if image is None:
                if self.stopping or self._closed:
                    return
                self._drop_capture()
                if not self._reopen():
                    return
                continue
            now = time.monotonic()
            yield Frame(image=as_bgr(image), index=index, capture_time=now, video_time=now - self._t0)
            index += 1

    def _release(self) -> None:
        self._drop_capture()


class _QuietOpenCV:
    """Silences OpenCV's own warnings (one per index that is not a camera) inside a `with`."""

    def __enter__(self) -> None:
        self._previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    def __exit__(self, *exc) -> None:
        cv2.utils.logging.setLogLevel(self._previous)


def camera_backend(name: str | None) -> int:
    """OpenCV API preference for a backend name ("v4l2", "dshow", ...); None or "any" -> CAP_ANY."""
    if not name:
        return cv2.CAP_ANY
    try:
        return CAMERA_BACKENDS[name.lower()]
    except KeyError:
        raise SourceError(f"unknown camera backend {name!r}; use one of {', '.join(CAMERA_BACKENDS)}.") from None


def open_camera(index: int, backend: str | None = None, size: tuple[int, int] | None = None,
                fps: float | None = None, retry: RetryPolicy = RetryPolicy()) -> LiveCaptureSource:
    """Camera `index` through OpenCV, optionally asking for a capture size (w, h) and frame rate."""
    api = camera_backend(backend)

    def open_capture() -> cv2.VideoCapture:
        with _QuietOpenCV():
            cap = cv2.VideoCapture(index, api)
        if cap.isOpened():
            if size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            if fps is not None:
                cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    with_backend = f" with backend {backend}" if backend and backend != "any" else ""
    return LiveCaptureSource(
        f"camera {index}", open_capture,
        f"cannot open camera {index}{with_backend}: no such device, or it is in use; try 'poselive cameras'.",
        retry, fps)


def _redact(url: str) -> str:
    """The URL without a password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def open_stream(url: str, retry: RetryPolicy = RetryPolicy()) -> LiveCaptureSource:
    """A network stream (rtsp://, http://, ...) read through OpenCV's FFmpeg backend."""
    shown = _redact(url)
    return LiveCaptureSource(
        f"stream {shown}", lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG),
        f"cannot open stream {shown}: no answer or an unsupported format; check the URL and that the stream "
        f"is running.", retry)


# --------------------------------------------------------------------------------------------- CLI: cameras
@dataclass(frozen=True)
class CameraInfo:
    index: int
    width: int
    height: int
    fps: float
    backend: str


def probe_cameras(max_index: int = 8, backend: str | None = None) -> list[CameraInfo]:
    """Cameras 0..max_index (inclusive) that open and deliver a frame."""
    api = camera_backend(backend)
    found = []
    with _QuietOpenCV():
        for index in range(max_index + 1):
            cap = cv2.VideoCapture(index, api)
            try:
                if not cap.isOpened():
                    continue
                ok, image = cap.read()
                if not ok or image is None:
                    continue
                found.append(CameraInfo(index, image.shape[1], image.shape[0], float(cap.get(cv2.CAP_PROP_FPS)),
                                        cap.getBackendName()))
            except cv2.error as e:
                log.debug("camera %d: %s", index, e)
            finally:
                cap.release()
    return found


def cameras_command(args) -> int:
    """`poselive cameras`: print the cameras that open, one a line."""
    cameras = probe_cameras(args.max_index, getattr(args, "backend", None))
    if not cameras:
        print("no cameras found")
        return 0
    for c in cameras:
        print(f"camera {c.index}: {c.width}x{c.height} @ {c.fps:g} fps ({c.backend}); --source {c.index}")
    return 0
