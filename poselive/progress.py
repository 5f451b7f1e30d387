"""Progress on the terminal for long work: a bar for a source of known length (frames done, frames per second,
time left), a one-line status for a live one (frames, frames per second, dropped frames, latency). Both are
tqdm lines on stderr, so stdout keeps only a command's results."""
from __future__ import annotations

from tqdm import tqdm


class FrameProgress:
    """total: the frames to expect (None when unknown: a count without an end); desc: what is being read;
    live: a camera or stream, which gets the status line instead of a bar; enabled: False draws nothing. Use
    as a context manager, calling update() after each frame."""

    def __init__(self, total: int | None, desc: str, live: bool = False, enabled: bool = True,
                 leave: bool = True, position: int | None = None):
        self.live = live
        # Drawn from the first frame on: work that fails at once (an input without frames) ends with its one error
        # line alone, not under a bar at 0%.
        self._make = lambda: tqdm(total=total, desc=desc, unit="frame", leave=leave, position=position,
                                  disable=not enabled, dynamic_ncols=True,
                                  bar_format="{desc}: {n_fmt} frames, {rate_fmt}{postfix}" if live else None)
        self._bar = None
        self._done = 0

    def update(self, done: int, dropped: int | None = None, latency_ms: float | None = None) -> None:
        """done: frames processed so far; dropped, latency_ms: shown on the live status line."""
        if self._bar is None:
            self._bar = self._make()
        if self.live and (dropped is not None or latency_ms is not None):
            parts = ([f"{dropped} dropped"] if dropped is not None else []) + (
                [f"latency {latency_ms:.0f} ms"] if latency_ms is not None else [])
            self._bar.set_postfix_str(", ".join(parts), refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> FrameProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
