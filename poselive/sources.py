"""Where frames come from: camera, video file, image folder, stream URL or a synthetic scene; and the
latest-frame capture thread that sits between a live source and the pipeline.

`open_source(spec)` turns the string a person types into a source:
    "0", "1:v4l2", "0:dshow"    camera index, optionally with an OpenCV backend (see CAMERA_BACKENDS)
    "clip.mp4"                  a video file
    "photos/", "photo.jpg"      a folder of images (natural sort order) or a single image
    "rtsp://...", "http://..."  a network stream, read through cv2.VideoCapture
    "synthetic", "synthetic:N"  generated frames (walking stick figures and moving shapes), N frames
Every source is an iterable of `poselive.records.Frame` (image (H, W, 3) uint8 BGR, index, capture_time =
time.monotonic() at grab, video_time in seconds) and a context manager; iterate it once.

Files and folders yield every frame as fast as the consumer takes them, unless `realtime=True` paces them at
their frame rate. Cameras and streams are live: wrap them in `LatestFrameGrabber`, which reads on its own
thread and keeps only the newest frame, so a slow pipeline shows the present instead of a growing backlog.
A live source that stops delivering (cable pulled, stream dropped) is reopened with exponential back-off;
its `status` says so in words the app can show.
"""
from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

from poselive.errors import SourceError
from poselive.image_header import MAX_IMAGE_PIXELS, image_size
from poselive.records import Frame
from poselive.schemas import COCO17

log = logging.getLogger(__name__)

# FFmpeg writes its own lines to stderr ("moov atom not found", "header damaged") beside the one-line messages
# these sources give, which already say what is wrong. OpenCV reads this when its FFmpeg backend first starts
# (-8 is FFmpeg's AV_LOG_QUIET); a value someone set themselves (to debug FFmpeg) wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CAMERA_BACKENDS = {
    "any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "v4l": cv2.CAP_V4L2, "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF, "avfoundation": cv2.CAP_AVFOUNDATION, "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
}
# A header's frame count may be off by a frame or so (edit lists, a last partial frame); a video that ends
# further from it than this is reported as truncated or corrupt.
FRAME_COUNT_TOLERANCE = 2
DEFAULT_FPS = 30.0

_CAMERA_SPEC = re.compile(r"^(\d+)(?::([A-Za-z0-9_]+))?$")
_URL_SPEC = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SYNTHETIC_SPEC = re.compile(r"^synthetic(?::(\d+))?$")


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


class _Pacer:
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


def _bgr(image: np.ndarray) -> np.ndarray:
    """A decoded 8-bit image (grey, BGR or BGRA) -> (H, W, 3) uint8 BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


# --------------------------------------------------------------------------------------------- video files
def _mp4_without_index(path: Path) -> bool:
    """True for an ISO media file (MP4, MOV, M4V: it starts with an 'ftyp' box) none of whose top-level boxes
    is the 'moov' index. Recorders (OpenCV's writer too) write the index last, so a file cut short while it
    was written or downloaded keeps its frames but loses the index; a faststart or fragmented file has it
    first and keeps it. Only box headers are read."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + 8 <= end:
                f.seek(pos)
                head = f.read(16)
                size, kind = struct.unpack(">I4s", head[:8])
                if (pos == 0 and kind != b"ftyp") or kind == b"moov":
                    return False
                if size == 1:
                    size = struct.unpack(">Q", head[8:16])[0]
                elif size == 0:  # the last box runs to the end of the file
                    break
                if size < 8:
                    return False  # not a box structure after all
                pos += size
            return pos > 0
    except (OSError, struct.error):
        return False


class VideoFileSource(FrameSource):
    """A video file read with OpenCV (FFmpeg). Frame.video_time = index / fps. A file that stops decoding
    early (truncated download, damaged bytes) ends the iteration with a warning naming the frame where it
    stopped; `frames_read` counts what was delivered."""

    def __init__(self, path: str | os.PathLike, realtime: bool = False):
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"cannot open video {path}: no such file.")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            if _mp4_without_index(path):
                raise SourceError(f"cannot open video {path}: it is an MP4 (or MOV) file cut short before its "
                                  f"index ('moov' box), which FFmpeg needs to read any frame; only MP4s written "
                                  f"with the index first (faststart or fragmented) can be read up to a cut.")
            raise SourceError(f"cannot open video {path}: OpenCV cannot read it (not a video, or a codec "
                              f"this OpenCV build lacks).")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not (fps and math.isfinite(fps) and fps > 0):
            log.warning("video %s does not state its frame rate; assuming %g fps", path, DEFAULT_FPS)
            fps = DEFAULT_FPS
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        super().__init__(f"video {path.name}", float(fps), is_live=realtime, frame_count=count if count > 0 else None)
        self.path = path
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frames_read = 0
        self._cap = cap
        self._lock = threading.Lock()  # close() from another thread must not release during a read

    def _read(self) -> np.ndarray | None:
        with self._lock:
            if self._closed:
                return None
            try:
                ok, image = self._cap.read()
            except cv2.error as e:
                log.debug("video %s: OpenCV error while decoding: %s", self.path, e)
                return None
        if not ok or image is None or image.size == 0:
            return None
        return image

    def _frames(self) -> Iterator[Frame]:
        pacer = _Pacer(self._stop_event) if self.is_live else None
        index = 0
        while not self.stopping:
            image = self._read()
            if image is None:
                self._report_end(index)
                return
            video_time = index / self.fps
            if pacer is not None:
                pacer.wait_until(video_time)
            self.frames_read = index + 1
            yield Frame(image=_bgr(image), index=index, capture_time=time.monotonic(), video_time=video_time)
            index += 1

    def _report_end(self, index: int) -> None:
        if self.stopping or self._closed:
            return
        if self.frame_count is not None and index < self.frame_count - FRAME_COUNT_TOLERANCE:
            msg = (f"video {self.path} stopped at frame {index} of the {self.frame_count} its header announces "
                   f"({index} frames read): the file is truncated or corrupt.")
            log.warning(msg)
        else:
            msg = f"video {self.path} ended after {index} frames."
            log.debug(msg)
        self.status = SourceStatus("ended", msg)

    def _release(self) -> None:
        with self._lock:
            self._cap.release()


# ------------------------------------------------------------------------------------------- image folders
def _natural_key(path: Path) -> list:
    """Sort key so that img2.jpg comes before img10.jpg."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside `folder` (extensions IMAGE_EXTENSIONS, any case), in natural sort order."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=_natural_key)


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR, or None when the file cannot be read or decoded. Reads bytes through numpy so
    non-ASCII paths work on every platform. An image of more than `max_pixels` pixels (None: no limit) raises
    SourceError; its size is read from the header, before anything is decoded."""
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    if max_pixels is not None and (wh := image_size(data.tobytes())) is not None:
        _check_pixels(path, wh, max_pixels)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is not None and max_pixels is not None:  # a format whose header was not read above
        _check_pixels(path, (image.shape[1], image.shape[0]), max_pixels)
    return None if image is None else _bgr(image)


def _check_pixels(path, wh: tuple[int, int], max_pixels: int) -> None:
    if wh[0] * wh[1] > max_pixels:
        raise SourceError(f"{Path(path).name}: {wh[0]}x{wh[1]} px is over the limit of {max_pixels / 1e6:g} "
                          f"megapixels; raise it with --max-megapixels")


class ImageSequenceSource(FrameSource):
    """A list of image files, e.g. the sorted images of a folder. Frame.index is the file's position in
    `paths` (so it still names the file when an unreadable one is skipped); video_time = index / fps."""

    def __init__(self, paths: list[Path], name: str, fps: float = DEFAULT_FPS, realtime: bool = False,
                 max_pixels: int | None = MAX_IMAGE_PIXELS):
        super().__init__(name, float(fps), is_live=realtime, frame_count=len(paths))
        self.paths = list(paths)
        self.max_pixels = max_pixels
        self.skipped: list[Path] = []

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, fps: float = DEFAULT_FPS, realtime: bool = False,
                    max_pixels: int | None = MAX_IMAGE_PIXELS) -> ImageSequenceSource:
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"cannot open image folder {folder}: no such folder.")
        paths = list_images(folder)
        if not paths:
            raise SourceError(f"cannot open image folder {folder}: it holds no images "
                              f"({', '.join(IMAGE_EXTENSIONS[:5])}, ...).")
        return cls(paths, f"folder {folder.name or folder}", fps, realtime, max_pixels)

    def _frames(self) -> Iterator[Frame]:
        pacer = _Pacer(self._stop_event) if self.is_live else None
        for index, path in enumerate(self.paths):
            if self.stopping:
                return
            try:
                image = read_image(path, self.max_pixels)
                why = f"{path.name}, it cannot be read as an image"
            except SourceError as e:
                image, why = None, str(e)
            if image is None:
                log.warning("%s: skipping %s", self.name, why)
                self.skipped.append(path)
                continue
            video_time = index / self.fps
            if pacer is not None:
                pacer.wait_until(video_time)
            yield Frame(image=image, index=index, capture_time=time.monotonic(), video_time=video_time)
        self.status = SourceStatus("ended", f"{self.name}: all {len(self.paths)} images read "
                                            f"({len(self.skipped)} skipped).")


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
            yield Frame(image=_bgr(image), index=index, capture_time=now, video_time=now - self._t0)
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
        pacer = _Pacer(self._stop_event) if self.is_live else None
        for index in range(self.frame_count or 0):
            if self.stopping:
                return
            video_time = index / self.fps
            image = self.render(index)
            if pacer is not None:
                pacer.wait_until(video_time)
            yield Frame(image=image, index=index, capture_time=time.monotonic(), video_time=video_time)
        self.status = SourceStatus("ended", f"{self.name}: {self.frame_count} frames generated.")


# -------------------------------------------------------------------------------------------- open_source
def _local_spec(spec: str | int | os.PathLike) -> str | None:
    """The file or folder path a source spec names (a "file://" URL's path included), or None for a camera,
    a stream URL or a synthetic scene."""
    text = os.fspath(str(spec) if isinstance(spec, int) else spec).strip()
    if _SYNTHETIC_SPEC.match(text) or _CAMERA_SPEC.match(text):
        return None
    if _URL_SPEC.match(text):
        return text[len("file://"):] if text.lower().startswith("file://") else None
    return text


def source_path(spec: str | int | os.PathLike) -> Path | None:
    """The local file or folder a source spec names, or None for a camera, stream or synthetic scene; lets a
    command check its input before it loads a model."""
    text = _local_spec(spec)
    return None if text is None else Path(text).expanduser()


def open_source(spec: str | int | os.PathLike, *, realtime: bool = False, fps: float | None = None,
                size: tuple[int, int] | None = None, frames: int | None = None,
                retry: RetryPolicy = RetryPolicy(), max_pixels: int | None = MAX_IMAGE_PIXELS) -> FrameSource:
    """Open what `spec` names (see the module docstring). realtime: pace files, folders and synthetic
    scenes at their frame rate (they then count as live); fps: frame rate asked of a camera, or the nominal
    rate of an image folder or synthetic scene; size: (w, h) asked of a camera, or of the synthetic scene;
    frames: length of the synthetic scene; retry: how a lost camera or stream is reopened; max_pixels: images
    larger than this are skipped with a warning (None: no limit).
    Raises SourceError with one sentence when it cannot be opened."""
    if isinstance(spec, int):
        spec = str(spec)
    text = os.fspath(spec).strip()
    if m := _SYNTHETIC_SPEC.match(text):
        n = int(m.group(1)) if m.group(1) else (frames if frames is not None else 300)
        return SyntheticSource(frames=n, fps=fps or 30.0, size=size or (640, 480), realtime=realtime)
    if m := _CAMERA_SPEC.match(text):
        return open_camera(int(m.group(1)), m.group(2), size=size, fps=fps, retry=retry)
    local = _local_spec(text)
    if local is None:
        return open_stream(text, retry)
    path = Path(local).expanduser()
    if path.is_dir():
        return ImageSequenceSource.from_folder(path, fps or DEFAULT_FPS, realtime, max_pixels)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if not path.is_file():
            raise SourceError(f"cannot open image {path}: no such file.")
        return ImageSequenceSource([path], f"image {path.name}", fps or DEFAULT_FPS, realtime, max_pixels)
    if not path.exists():
        if path.suffix:
            raise SourceError(f"cannot open video {path}: no such file.")
        raise SourceError(f"cannot open source {text!r}: no such file or folder; give a camera index, a video "
                          f"file, an image folder, a URL or 'synthetic'.")
    return VideoFileSource(path, realtime=realtime)


# ----------------------------------------------------------------------------------- latest-frame grabber
class LatestFrameGrabber:
    """Reads `source` on its own thread into a one-slot buffer and hands the newest frame to `get()`.

    drop_stale (default: source.is_live): when a new frame arrives before the consumer took the previous
    one, the previous one is dropped (counted in `dropped`) so the consumer always gets the present; its
    Frame.capture_time is kept, so `time.monotonic() - frame.capture_time` is the true latency. With
    drop_stale=False the capture thread waits instead (every frame of a file is processed, while decoding
    still overlaps the consumer's work).

    The grabber owns the source: `close()` (or leaving `with`) stops the thread and closes the source. An
    exception in the capture thread (e.g. SourceError when a camera never comes back) is raised again by
    `get()` in the consumer's thread."""

    def __init__(self, source: FrameSource, drop_stale: bool | None = None, start: bool = True):
        self.source = source
        self.drop_stale = source.is_live if drop_stale is None else drop_stale
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._dropped = 0
        self._captured = 0
        self._finished = False
        self._error: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                with self._cond:
                    if not self.drop_stale:
                        while self._slot is not None and not self._stopping:
                            self._cond.wait()
                    if self._stopping:
                        break
                    if self._slot is not None:
                        self._dropped += 1
                    self._slot = frame
                    self._captured += 1
                    self._cond.notify_all()
        except BaseException as e:  # handed to the consumer by get(), which raises it there
            self._error = e
        finally:
            self.source.close()
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned; waits up to `timeout` seconds (None: until one comes or the
        source ends). Returns None on timeout or when the source has ended (see `finished`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None and not self._finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._slot is not None:
                frame, self._slot = self._slot, None
                self._cond.notify_all()
                return frame
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source ends (each one the newest at the time it is taken)."""
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame

    @property
    def dropped(self) -> int:
        """Frames captured but replaced before the consumer took them."""
        return self._dropped

    @property
    def captured(self) -> int:
        return self._captured

    @property
    def finished(self) -> bool:
        """True once the source has no more frames and the slot is empty."""
        with self._cond:
            return self._finished and self._slot is None

    @property
    def status(self) -> SourceStatus:
        return self.source.status

    def close(self, timeout_s: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.source.stop()
        if not self._thread.is_alive():
            self.source.close()  # never started, or already finished (closing twice is harmless)
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            # A driver blocked inside read(); the daemon thread closes the source when it returns.
            log.warning("%s: capture thread did not stop within %g s", self.source.name, timeout_s)

    def __enter__(self) -> LatestFrameGrabber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
