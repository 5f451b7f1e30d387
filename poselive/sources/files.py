"""Sources read from disk: video files (`VideoFileSource`, with truncation reported) and image folders or
single images (`ImageSequenceSource`); `read_image` for one photo."""
from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from poselive.errors import SourceError
from poselive.image_header import MAX_IMAGE_PIXELS, image_size
from poselive.records import Frame
from poselive.sources.base import (DEFAULT_FPS, FRAME_COUNT_TOLERANCE, FrameSource, Pacer, SourceStatus,
                                   as_bgr)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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
        pacer = Pacer(self._stop_event) if self.is_live else None
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
            yield Frame(image=as_bgr(image), index=index, capture_time=time.monotonic(), video_time=video_time)
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
    return None if image is None else as_bgr(image)


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
        pacer = Pacer(self._stop_event) if self.is_live else None
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
