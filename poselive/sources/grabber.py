"""`LatestFrameGrabber`: reads a live source on its own thread and keeps only the newest frame (a one-slot
queue that replaces the stale frame and counts the drops), so a slow pipeline shows the present."""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterator


from poselive.records import Frame
from poselive.sources.base import FrameSource, SourceStatus

log = logging.getLogger(__name__)

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
