"""`open_source(spec)`: the string a person types (camera index, file, folder, URL, 'synthetic') -> a source."""
from __future__ import annotations

import os
import re
from pathlib import Path


from poselive.errors import SourceError
from poselive.image_header import MAX_IMAGE_PIXELS
from poselive.sources.base import DEFAULT_FPS, FrameSource, RetryPolicy
from poselive.sources.files import IMAGE_EXTENSIONS, ImageSequenceSource, VideoFileSource
from poselive.sources.live import open_camera, open_stream
from poselive.sources.synthetic import SyntheticSource


_CAMERA_SPEC = re.compile(r"^(\d+)(?::([A-Za-z0-9_]+))?$")
_URL_SPEC = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SYNTHETIC_SPEC = re.compile(r"^synthetic(?::(\d+))?$")


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
