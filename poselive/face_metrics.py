"""Face landmark accuracy, 300-W style: NME, failure rate, AUC, the CED curve (as a PNG drawn with OpenCV) and a
plain-text table comparing methods.

NME of one face = mean over the 68 points of the point error divided by the ground truth's outer-eye-corner
distance (landmarks 36 and 45, "inter-ocular" in 300-W papers). A face fails when its NME exceeds the
threshold (0.08 by convention). The CED curve is the fraction of faces with NME <= t; AUC@0.08 is its area on
[0, 0.08] divided by 0.08 (1.0 = every face perfect).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.schemas import FACE68_OUTER_EYE_CORNERS

FAILURE_NME = 0.08


def nme(pred: np.ndarray, gt: np.ndarray, norm_points: tuple[int, int] = FACE68_OUTER_EYE_CORNERS) -> np.ndarray:
    """Per-face NME. pred, gt: (N, K, 2+) or (K, 2+) in the same px frame (extra columns ignored).
    Returns (N,) float64 (or a 0-d array for one face)."""
    p = np.asarray(pred, np.float64)[..., :2]
    g = np.asarray(gt, np.float64)[..., :2]
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth {g.shape}")
    a, b = norm_points
    d = np.linalg.norm(g[..., a, :] - g[..., b, :], axis=-1)
    return np.linalg.norm(p - g, axis=-1).mean(-1) / np.maximum(d, 1e-9)


def failure_rate(nmes: np.ndarray, threshold: float = FAILURE_NME) -> float:
    """Fraction of faces whose NME is above `threshold`."""
    return float(np.mean(np.asarray(nmes) > threshold))


def auc(nmes: np.ndarray, threshold: float = FAILURE_NME) -> float:
    """Area under the CED curve on [0, threshold], divided by threshold. Exact: a face with NME e contributes
    (threshold - min(e, threshold)) / threshold."""
    e = np.minimum(np.asarray(nmes, np.float64), threshold)
    return float(np.mean((threshold - e) / threshold))


def ced(nmes: np.ndarray, threshold: float = FAILURE_NME, steps: int = 161) -> tuple[np.ndarray, np.ndarray]:
    """CED curve: thresholds (steps,) on [0, threshold] and the fraction of faces with NME <= each."""
    t = np.linspace(0.0, threshold, steps)
    e = np.sort(np.asarray(nmes, np.float64))
    return t, np.searchsorted(e, t, side="right") / max(len(e), 1)


@dataclass(frozen=True)
class FaceScores:
    """Summary of one method on one set: faces, mean NME, failure rate and AUC at `threshold`."""
    faces: int
    nme: float
    failure_rate: float
    auc: float
    threshold: float = FAILURE_NME

    @classmethod
    def of(cls, nmes: np.ndarray, threshold: float = FAILURE_NME) -> "FaceScores":
        nmes = np.asarray(nmes, np.float64)
        return cls(len(nmes), float(nmes.mean()) if len(nmes) else float("nan"), failure_rate(nmes, threshold),
                   auc(nmes, threshold), threshold)


# A colour-blind-safe palette (Okabe-Ito), BGR.
_COLOURS = ((178, 114, 0), (0, 94, 213), (115, 158, 0), (167, 121, 204), (233, 180, 86), (66, 228, 240),
            (0, 0, 0))


def draw_ced(results: dict[str, np.ndarray], path: str | Path | None = None, threshold: float = FAILURE_NME,
             size_wh: tuple[int, int] = (640, 480),
             title: str = "CED: fraction of faces with NME <= x (outer eye corners)") -> np.ndarray:
    """Draw CED curves of several methods (name -> per-face NMEs) as a uint8 BGR image; write it to `path`
    (PNG) when given. Axes: NME 0..threshold, fraction of faces 0..1; the legend gives each AUC."""
    import cv2

    W, H = size_wh
    left, right, top, bottom = 60, 20, 40, 50
    img = np.full((H, W, 3), 255, np.uint8)
    pw, ph = W - left - right, H - top - bottom

    def to_px(t, f):
        return (int(round(left + pw * t / threshold)), int(round(top + ph * (1.0 - f))))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(11):
        f = i / 10
        y = to_px(0, f)[1]
        cv2.line(img, (left, y), (left + pw, y), (225, 225, 225), 1)
        cv2.putText(img, f"{f:.1f}", (left - 38, y + 5), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for i in range(9):
        t = threshold * i / 8
        x = to_px(t, 0)[0]
        cv2.line(img, (x, top), (x, top + ph), (225, 225, 225), 1)
        cv2.putText(img, f"{t:.2f}", (x - 14, top + ph + 18), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    cv2.putText(img, "NME", (left + pw // 2 - 15, H - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 25), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    labels = [f"{name}  AUC {auc(nmes, threshold):.3f}" for name, nmes in results.items()]
    for k, nmes in enumerate(results.values()):
        t, frac = ced(nmes, threshold, steps=4 * pw)
        pts = np.array([to_px(a, b) for a, b in zip(t, frac)], np.int32)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, _COLOURS[k % len(_COLOURS)], 2, cv2.LINE_AA)
    # Legend in the lower right, where CED curves (which rise to the right) leave room.
    if labels:
        text_w = max(cv2.getTextSize(s, font, 0.45, 1)[0][0] for s in labels)
        x0, y0 = left + pw - text_w - 50, top + ph - 12 - 20 * len(labels)
        cv2.rectangle(img, (x0, y0), (left + pw - 8, top + ph - 8), (255, 255, 255), -1)
        cv2.rectangle(img, (x0, y0), (left + pw - 8, top + ph - 8), (160, 160, 160), 1)
        for k, label in enumerate(labels):
            colour = _COLOURS[k % len(_COLOURS)]
            y = y0 + 18 + 20 * k
            cv2.line(img, (x0 + 8, y - 4), (x0 + 33, y - 4), colour, 2, cv2.LINE_AA)
            cv2.putText(img, label, (x0 + 40, y), font, 0.45, colour, 1, cv2.LINE_AA)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), img):
            raise OSError(f"could not write {path}")
    return img
