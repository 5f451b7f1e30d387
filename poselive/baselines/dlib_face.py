"""dlib's 68-point shape predictor (Kazemi & Sullivan's regression-tree ensemble) as a face-landmark baseline.

Optional: `pip install dlib-bin face-recognition-models` (the second package ships
shape_predictor_68_face_landmarks.dat). dlib is imported only when a predictor is built.

Caveat for comparisons: dlib's model was trained on iBUG 300-W, whose training set includes the AFW and HELEN
training faces, so on poselive's validation split (drawn from the same photos) it has seen the test faces.

The predictor was trained on dlib's own HOG detector boxes, so given a poselive face box it first maps the box
back to the HOG detector's framing (face_detect.DLIB_HOG_CALIBRATION, inverted); otherwise it would see the
face at a size it never learned.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.face_detect import DLIB_HOG_CALIBRATION

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"


class BaselineUnavailable(PoseliveError):
    """An optional baseline is not installed."""


def default_model_path() -> Path:
    """Where face-recognition-models keeps dlib's 68-point model (found without importing the package, whose
    __init__ needs setuptools' pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise BaselineUnavailable(f"dlib's {MODEL_FILE} is not installed; 'pip install face-recognition-models' "
                                  "ships it, or pass model_path=")
    return Path(spec.origin).parent / "models" / MODEL_FILE


def face_box_to_dlib_rect(box_xywh) -> tuple[float, float, float, float]:
    """A poselive face box -> the (left, top, right, bottom) a dlib HOG detection of that face would have."""
    x, y, w, _ = (float(v) for v in box_xywh)
    c = DLIB_HOG_CALIBRATION
    raw_w = w / c.side_per_width
    cx = x + w / 2 - c.dx * raw_w
    cy = y + w / 2 - c.dy * raw_w
    return (cx - raw_w / 2, cy - raw_w / 2, cx + raw_w / 2, cy + raw_w / 2)


class DlibFace68:
    """`DlibFace68()(image_bgr, boxes_xywh) -> (N, 68, 2)` landmarks in image px (0-based pixel centres)."""

    def __init__(self, model_path: str | Path | None = None):
        try:
            import dlib
        except ImportError:
            raise BaselineUnavailable("dlib is not installed; 'pip install dlib-bin face-recognition-models' "
                                      "adds the 68-point baseline") from None
        path = Path(model_path) if model_path else default_model_path()
        if not path.exists():
            raise BaselineUnavailable(f"dlib model {path} not found")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))

    def __call__(self, image_bgr: np.ndarray, boxes_xywh) -> np.ndarray:
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        out = []
        for box in boxes_xywh:
            l, t, r, b = (int(round(v)) for v in face_box_to_dlib_rect(box))
            shape = self._predictor(rgb, self._dlib.rectangle(l, t, r, b))
            # dlib's part coordinates are integer pixel indices, i.e. already 0-based pixel centres.
            out.append([(p.x, p.y) for p in shape.parts()])
        return np.asarray(out, np.float64).reshape(-1, 68, 2)
