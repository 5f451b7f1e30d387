"""Writing results: one JSON line per frame, and annotated MP4; `JsonlSink` and `VideoSink` are the same as
sinks of the live loop. Both write to a temporary file first and rename it into place when finished
(`atomic`), so an interrupted run never leaves a half file under the final name. A source that ends early (truncated video) still finishes its files: what was read is kept."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from poselive.errors import PoseliveError
from poselive.serialize import frame_json


def unfinished_paths(path: str | os.PathLike) -> list[Path]:
    """The temporary names a writer of `path` uses until it finishes (JSONL: .NAME.part; MP4: .STEM.part.mp4,
    since the container is chosen from the extension)."""
    path = Path(path)
    return [path.with_name(f".{path.name}.part"), path.with_name(f".{path.stem}.part{path.suffix or '.mp4'}")]


class _AtomicFile:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = unfinished_paths(self.path)[0]

    def finish(self) -> None:
        """Move the temporary file into place."""
        if self.tmp.exists():
            os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.tmp.exists():
            self.tmp.unlink()


class JsonlWriter(_AtomicFile):
    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self._f = open(self.tmp, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.finish()

    def close_unfinished(self) -> None:
        """Stop writing and leave no file behind (the work is to be redone)."""
        if not self._f.closed:
            self._f.close()
        self.discard()


# The frame sizes OpenCV's mp4v (MPEG-4 part 2) writer opens for, per side, measured with OpenCV 4.14: 1 px
# and 8192 px or more fail to open.
MP4V_SIDE_PX = (2, 8191)


class VideoWriter(_AtomicFile):
    """MP4 (mp4v) writer opened on the first frame, so the size comes from the frames themselves."""

    def __init__(self, path: str | os.PathLike, fps: float):
        super().__init__(path)
        self.fps = fps if fps and fps > 0 else 25.0
        self._w = None

    def write(self, image: np.ndarray) -> None:
        if self._w is None:
            h, w = image.shape[:2]
            if not (MP4V_SIDE_PX[0] <= min(w, h) and max(w, h) <= MP4V_SIDE_PX[1]):
                raise PoseliveError(f"cannot write video {self.path}: its frames are {w}x{h} px, and the mp4v "
                                    f"encoder takes {MP4V_SIDE_PX[0]} to {MP4V_SIDE_PX[1]} px a side")
            self.tmp = unfinished_paths(self.path)[1]
            self._w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._w.isOpened():
                raise PoseliveError(f"cannot write video {self.path}: OpenCV cannot open an mp4v writer for "
                                    f"{self.tmp} (no mp4v encoder in this build, or the folder is not writable)")
        self._w.write(image)

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None
        self.finish()

    def close_unfinished(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None
        self.discard()


class JsonlSink:
    """A live-loop sink (poselive.live.Sink) writing one JSON line per frame (serialize.frame_json)."""

    def __init__(self, path: str | os.PathLike):
        self.writer = JsonlWriter(path)

    def on_result(self, live) -> None:
        r = live.result
        self.writer.write(frame_json(r.frame.index, r.frame.video_time, r.people, r.faces))

    def close(self) -> None:
        self.writer.close()

    def discard(self) -> None:
        """Close and leave no file behind."""
        self.writer.close_unfinished()


class VideoSink:
    """A live-loop sink writing each drawn frame (LiveResult.image: run the loop with an Overlay) to an MP4."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.writer = VideoWriter(path, fps)

    def on_result(self, live) -> None:
        self.writer.write(live.image)

    def close(self) -> None:
        self.writer.close()

    def discard(self) -> None:
        """Close and leave no file behind."""
        self.writer.close_unfinished()
