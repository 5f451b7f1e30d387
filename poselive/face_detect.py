"""Where faces are: face boxes from a detector, from a body's head keypoints, or from last frame's landmarks.

Every function here returns boxes in one convention, the *face box*: a square (x, y, w, h) in image px, centred
on the tight box of the 68 landmarks, with side FACE_BOX_SCALE x the tight box's longer side. The face model is
trained on crops of `transforms.box_to_crop(face_box, (128, 128))` (1.25x that square), so any source of boxes
must produce this convention for the network to see faces at the size it learned. Detectors frame faces their
own way (OpenCV's Haar square is larger and sits higher; dlib's HOG square is smaller and also sits higher), so
each detector's raw box goes through a correction (`DetectorCalibration`) measured on the 300-W faces.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.schemas import COCO17

FACE_BOX_SCALE = 1.1


class FaceDetectorUnavailable(PoseliveError):
    """The requested face detector cannot run in this installation."""


def square_box(center_xy, side: float) -> tuple[float, float, float, float]:
    cx, cy = (float(v) for v in center_xy)
    side = float(side)
    return (cx - side / 2, cy - side / 2, side, side)


def face_box_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The face box (x, y, w, h, image px) of 68 landmarks (68, 2 or 3; x, y in image px).

    This is the box training crops are cut around, and the box a tracker uses to crop the next frame's face.
    Rows with a non-finite coordinate are ignored."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    xy = xy[np.isfinite(xy).all(1)]
    if len(xy) < 2:
        raise ValueError("need at least two finite landmarks to place a face box")
    lo, hi = xy.min(0), xy.max(0)
    return square_box((lo + hi) / 2, FACE_BOX_SCALE * max(float((hi - lo).max()), 1.0))


# ----------------------------------------------------------------------------------------------- from a body
# Fitted on the 300-W training faces (poselive.train.face_data.fit_body_face_box), with COCO's eyes taken as
# the eye-contour centres and COCO's nose as landmark 30 (the nose tip). Centre = eye_mid + _BODY_DOWN x down
# + _BODY_NOSE x (nose - eye_mid), where `down` is the eye line turned 90 degrees towards the chin (as long as
# the eye distance): the nose tip swings sideways as the head turns while the face's outline shifts the other
# way. Side = _BODY_SIDE_PER_SCALE x max(eye distance, _BODY_NOSE_WEIGHT x eye-mid-to-nose distance): the eye
# distance shrinks as the head turns, the nose distance as it nods. On the validation faces: median IoU with
# the landmark face box 0.81 (10th percentile 0.66); eyes without the nose: 0.81 (0.64).
_BODY_DOWN = 0.99
_BODY_NOSE = -0.60
_BODY_EYES_ONLY_DOWN = 0.67   # the same fit without the nose term
_BODY_NOSE_WEIGHT = 1.35
_BODY_SIDE_PER_SCALE = 2.58
# With one eye and one ear (a profile), COCO's eye-to-ear distance stands in for the eye distance. This one is
# anthropometric, not fitted (300-W has no ear points): pupil to tragus is about 1.3x the inter-pupil distance.
_EAR_TO_EYE_DISTANCE = 1.3


def face_box_from_body(keypoints: np.ndarray, min_score: float = 0.3) -> tuple[float, float, float, float] | None:
    """A face box (x, y, w, h, image px) from a COCO-17 body's nose, eyes and ears, or None when too few of
    them are confident.

    keypoints: (17, 3) x, y in image px and score (or visibility); a point counts when score >= min_score."""
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (COCO17.num_keypoints, 3):
        raise ValueError(f"expected COCO-17 keypoints (17, 3), got {kp.shape}")
    ok = (kp[:, 2] >= min_score) & np.isfinite(kp[:, :2]).all(1)
    nose, leye, reye, lear, rear = (kp[i, :2] if ok[i] else None for i in range(5))
    if leye is not None and reye is not None:
        eye_mid = (leye + reye) / 2
        scale = float(np.linalg.norm(leye - reye))
        down = np.array([reye[1] - leye[1], leye[0] - reye[0]])
        center = eye_mid + _BODY_EYES_ONLY_DOWN * down
        if nose is not None:
            to_nose = nose - eye_mid
            scale = max(scale, _BODY_NOSE_WEIGHT * float(np.linalg.norm(to_nose)))
            center = eye_mid + _BODY_DOWN * down + _BODY_NOSE * to_nose
        if scale < 1.0:
            return None
        return square_box(center, _BODY_SIDE_PER_SCALE * scale)
    # A profile: one eye, and the ear on the same side.
    for eye, ear in ((leye, lear), (reye, rear)):
        if eye is None or ear is None:
            continue
        scale = float(np.linalg.norm(eye - ear)) / _EAR_TO_EYE_DISTANCE
        if scale < 1.0:
            return None
        # The box centre sits at about nose-tip height, between the eye and the nose tip, in front of the ear.
        center = eye + 0.3 * (eye - ear) + np.array([0.0, 0.6 * scale]) if nose is None else \
            (eye + nose) / 2 + np.array([0.0, 0.3 * scale])
        return square_box(center, _BODY_SIDE_PER_SCALE * scale)
    return None


# --------------------------------------------------------------------------------------------- detectors
@dataclass(frozen=True)
class DetectorCalibration:
    """Raw detector box (x, y, w, h) -> face box: centre moved by (dx, dy) x the raw width, side scaled."""
    dx: float
    dy: float
    side_per_width: float

    def apply(self, box) -> tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in box)
        return square_box((x + w / 2 + self.dx * w, y + h / 2 + self.dy * w), self.side_per_width * w)


RAW_BOXES = DetectorCalibration(0.0, 0.0, 1.0)  # the detector's own square, for calibrating
# Fitted by poselive.train.face_data.calibrate_detector on the 1068 300-W training faces (medians of per-face
# offsets and ratios). Haar: haarcascade_frontalface_default.xml of opencv-python-headless 4.14, found 90 % of
# the faces; its square sits higher on the face. dlib 20 HOG (no upsampling): found 96 %.
HAAR_CALIBRATION = DetectorCalibration(0.0, 0.138, 0.945)
DLIB_HOG_CALIBRATION = DetectorCalibration(-0.040, 0.069, 1.117)


def _haar_cascade(path: str | None):
    import cv2
    if not hasattr(cv2, "CascadeClassifier"):
        raise FaceDetectorUnavailable(
            f"OpenCV {cv2.__version__} has no Haar cascades (this wheel ships neither CascadeClassifier nor "
            "the cascade files); "
            "install 'opencv-python-headless<5' for them, or use detect_faces_dlib ('pip install dlib-bin'), "
            "or find faces from body keypoints (face_box_from_body)")
    if path is None:
        folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".")
        path = str(folder / "haarcascade_frontalface_default.xml")
    if not Path(path).exists():
        raise FaceDetectorUnavailable(f"Haar cascade file {path} not found; pass cascade_path= to its .xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FaceDetectorUnavailable(f"OpenCV could not load the Haar cascade {path}")
    return cascade


_CASCADES: dict = {}
HAAR_SEARCH_PX = 40


def detect_faces_haar(image_bgr: np.ndarray, min_size_px: int = 40, cascade_path: str | None = None,
                      calibration: DetectorCalibration = HAAR_CALIBRATION, region=None
                      ) -> list[tuple[float, float, float, float]]:
    """Frontal faces by OpenCV's Haar cascade, as face boxes (x, y, w, h, image px), largest first.

    region: (x, y, w, h) image px to search in (clipped to the image), or None for the whole image. The
    cascade's cost grows with the area searched: a whole 640x360 frame took 80-150 ms on 2 cores, a region
    around one known face a few ms.
    Needs OpenCV < 5 (its wheels ship `cv2.data.haarcascades`); raises FaceDetectorUnavailable otherwise."""
    import cv2
    key = cascade_path or ""
    if key not in _CASCADES:
        _CASCADES[key] = _haar_cascade(cascade_path)
    x0 = y0 = 0
    if region is not None:
        h, w = image_bgr.shape[:2]
        x0, y0 = max(int(region[0]), 0), max(int(region[1]), 0)
        x1, y1 = min(int(np.ceil(region[0] + region[2])), w), min(int(np.ceil(region[1] + region[3])), h)
        if x1 - x0 < min_size_px or y1 - y0 < min_size_px:
            return []
        image_bgr = image_bgr[y0:y1, x0:x1]
    gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
    # Looking only for faces of min_size_px or more, search an image shrunk until they are HAAR_SEARCH_PX: the
    # cascade then steps 2 px where it stepped 1 (a 640x360 frame from 60 px: 31 -> 22 ms).
    shrink = max(min_size_px / HAAR_SEARCH_PX, 1.0)
    if shrink > 1.0:
        gray = cv2.resize(gray, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA)
    side = int(round(min_size_px / shrink))
    raw = _CASCADES[key].detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    raw = np.asarray(raw, np.float64).reshape(-1, 4) * shrink + [x0, y0, 0, 0]
    boxes = [calibration.apply(b) for b in raw]
    return sorted(boxes, key=lambda b: -b[2])


_DLIB = {}


def detect_faces_dlib(image_bgr: np.ndarray, upsample: int = 0, calibration: DetectorCalibration = DLIB_HOG_CALIBRATION
                      ) -> list[tuple[float, float, float, float]]:
    """Faces by dlib's HOG detector (optional: `pip install dlib-bin`), as face boxes, largest first. Its window
    is 80 px, so smaller faces need `upsample` >= 1 (each doubles the image, and roughly quadruples the time)."""
    try:
        import dlib
    except ImportError:
        raise FaceDetectorUnavailable("dlib is not installed; 'pip install dlib-bin' adds its HOG face "
                                      "detector") from None
    if "hog" not in _DLIB:
        _DLIB["hog"] = dlib.get_frontal_face_detector()
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    rects = _DLIB["hog"](rgb, upsample)
    boxes = [calibration.apply((r.left(), r.top(), r.width(), r.height())) for r in rects]
    return sorted(boxes, key=lambda b: -b[2])

