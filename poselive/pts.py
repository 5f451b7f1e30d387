""".pts landmark files (300-W / iBUG convention): read and write.

A file holds an optional header (`version: 1`, `n_points: N`), then `{`, N lines of `x y`, then `}`. Files
without the header are plain `x y` lines. Coordinates in the file are 1-based (the top-left pixel's centre is
(1, 1)); in poselive they are 0-based pixel centres, so reading subtracts 1 and writing adds it back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError


class PtsError(PoseliveError):
    """A .pts file cannot be parsed."""


def parse_pts(text: str, source: str = "<string>") -> np.ndarray:
    """Landmarks (N, 2) float64, 0-based pixel centres, from the text of a .pts file."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    declared = None
    body = lines
    if "{" in lines:
        start = lines.index("{")
        if "}" not in lines[start:]:
            raise PtsError(f"{source}: '{{' is never closed by '}}'; the file looks truncated")
        end = start + lines[start:].index("}")
        for ln in lines[:start]:
            key, _, value = ln.partition(":")
            if key.strip() == "n_points":
                try:
                    declared = int(value)
                except ValueError:
                    raise PtsError(f"{source}: n_points is {value.strip()!r}, not a whole number") from None
        body = lines[start + 1:end]
    pts = []
    for i, ln in enumerate(body):
        parts = ln.split()
        try:
            if len(parts) != 2:
                raise ValueError
            pts.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise PtsError(f"{source}: point line {i + 1} is {ln!r}; expected two numbers 'x y'") from None
    if not pts:
        raise PtsError(f"{source}: no points found; a .pts file lists one 'x y' pair per line")
    if declared is not None and declared != len(pts):
        raise PtsError(f"{source}: header says n_points: {declared} but {len(pts)} points follow")
    xy = np.asarray(pts, np.float64) - 1.0
    if not np.isfinite(xy).all():
        raise PtsError(f"{source}: a coordinate is not a finite number")
    return xy


def read_pts(path: str | Path) -> np.ndarray:
    """Read a .pts file -> (N, 2) float64 landmarks, 0-based pixel centres (image px)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PtsError(f"cannot read landmarks file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PtsError(f"{path} is not a text file; expected a .pts landmarks file") from None
    return parse_pts(text, str(path))


def format_pts(landmarks_xy: np.ndarray, decimals: int = 3) -> str:
    """Text of a .pts file (with header, 1-based) for landmarks (N, 2) in 0-based pixel centres."""
    xy = np.asarray(landmarks_xy, np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"landmarks must be (N, 2), got shape {xy.shape}")
    xy = xy[:, :2] + 1.0
    rows = [f"{x:.{decimals}f} {y:.{decimals}f}" for x, y in xy]
    return "\n".join(["version: 1", f"n_points: {len(rows)}", "{", *rows, "}"]) + "\n"


def write_pts(path: str | Path, landmarks_xy: np.ndarray, decimals: int = 3) -> None:
    """Write landmarks (N, 2 or more; only x, y are written) in 0-based pixel centres as a 1-based .pts file."""
    Path(path).write_text(format_pts(landmarks_xy, decimals))
