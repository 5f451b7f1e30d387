"""Head pose from 68 landmarks: a 3D mean face, a perspective-n-point fit, and angles with a stated convention.

Frames. Camera (OpenCV): x right, y down, z forward (into the scene), origin at the camera. Model (the mean
face below): x towards the subject's left, y down the face, z from the face towards the back of the head,
origin at the nose tip (landmark 30), millimetres. With the identity rotation a model face looks straight into
the camera, upright.

Angles (degrees, `HeadPose`), from R (model -> camera) = Ry(-yaw) @ Rx(-pitch) @ Rz(roll) in camera axes:
  yaw   > 0: the subject turns their head to their own left (for a face towards the camera, the nose moves to
             the image's right);
  pitch > 0: the subject looks up (the nose moves up in the image);
  roll  > 0: the subject tilts their head towards their own left shoulder (clockwise on screen).
Zero pitch is where the line from the eye corners to the mouth corners is parallel to the image plane. The
angles are relative to the camera's axes, not to the line of sight, so an upright face in an image corner
still reads near zero. Pitch is the middle angle: the decomposition is unique for |pitch| < 90.

Intrinsics, without a calibration: focal length = image width in px (a 53 degree horizontal field of view;
webcams are often a little wider), principal point at the image centre, no distortion. A wrong focal length
mostly changes the distance (tvec), little the angles: with the true one 1.4x longer, distances came out 30 %
short and angles within 3 degrees (mean 1.6) on synthetic faces at +-40 degrees.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from poselive.records import HeadPose

# 3D mean face, mm, model frame (module docstring), 300-W 68-point order. Derived for poselive: by
# poselive.train.face_data.derive_mean_face_3d (rank-3 factorisation + robust alternating least squares,
# made left-right symmetric) from the 2D annotations of the 1068 training faces of 300-W AFW and HELEN
# (iBUG 300-W, research and non-commercial use; no other source), scaled so the outer eye corners are 90 mm
# apart. Beside the widely copied OpenFace-derived 68-point model it has the same width and height and larger
# depths (the outer eye corners 49 mm behind the nose tip here, 44 mm there). The jaw contour (0-16) is a
# silhouette in photos, not fixed skin points, so its depths are the least certain and the fit below weights
# it down.
MEAN_FACE_MM = np.array([
    ( -73.2,  -35.1,  97.0), ( -72.3,  -16.0,  92.8), ( -69.9,    2.8,  90.4), ( -65.9,   21.0,  89.2),  # 0-3
    ( -58.6,   38.2,  84.3), ( -47.1,   53.4,  75.3), ( -33.0,   66.0,  63.3), ( -17.5,   76.0,  51.3),  # 4-7
    (   0.0,   78.9,  46.9), (  17.5,   76.0,  51.3), (  33.0,   66.0,  63.3), (  47.1,   53.4,  75.3),  # 8-11
    (  58.6,   38.2,  84.3), (  65.9,   21.0,  89.2), (  69.9,    2.8,  90.4), (  72.3,  -16.0,  92.8),  # 12-15
    (  73.2,  -35.1,  97.0), ( -60.0,  -48.3,  55.8), ( -51.1,  -56.4,  44.2), ( -38.1,  -59.0,  34.9),  # 16-19
    ( -24.5,  -57.2,  27.6), ( -11.7,  -52.3,  22.9), (  11.7,  -52.3,  22.9), (  24.5,  -57.2,  27.6),  # 20-23
    (  38.1,  -59.0,  34.9), (  51.1,  -56.4,  44.2), (  60.0,  -48.3,  55.8), (   0.0,  -37.2,  23.0),  # 24-27
    (   0.0,  -24.8,  15.8), (   0.0,  -12.6,   7.8), (   0.0,    0.0,   0.0), ( -15.3,    8.4,  23.9),  # 28-31
    (  -7.9,   11.0,  20.1), (   0.0,   13.2,  17.6), (   7.9,   11.0,  20.1), (  15.3,    8.4,  23.9),  # 32-35
    ( -45.0,  -35.7,  49.2), ( -36.9,  -40.0,  44.1), ( -27.3,  -39.9,  42.3), ( -18.7,  -33.8,  42.6),  # 36-39
    ( -27.8,  -32.3,  43.2), ( -37.4,  -32.4,  45.1), (  18.7,  -33.8,  42.6), (  27.3,  -39.9,  42.3),  # 40-43
    (  36.9,  -40.0,  44.1), (  45.0,  -35.7,  49.2), (  37.4,  -32.4,  45.1), (  27.8,  -32.3,  43.2),  # 44-47
    ( -28.3,   30.6,  49.2), ( -17.9,   26.7,  33.6), (  -7.2,   24.5,  25.0), (   0.0,   26.3,  24.2),  # 48-51
    (   7.2,   24.5,  25.0), (  17.9,   26.7,  33.6), (  28.3,   30.6,  49.2), (  18.3,   40.6,  38.1),  # 52-55
    (   7.8,   45.0,  30.6), (   0.0,   45.8,  29.5), (  -7.8,   45.0,  30.6), ( -18.3,   40.6,  38.1),  # 56-59
    ( -24.0,   31.1,  46.9), (  -7.3,   30.5,  28.0), (   0.0,   31.2,  26.8), (   7.3,   30.5,  28.0),  # 60-63
    (  24.0,   31.1,  46.9), (   7.4,   35.6,  29.1), (   0.0,   36.5,  28.0), (  -7.4,   35.6,  29.1),  # 64-67
], np.float64)

# Per-landmark weights in the refinement: jaw contour (silhouette) and mouth (opens, smiles) count less.
POINT_WEIGHTS = np.ones(68)
POINT_WEIGHTS[0:17] = 0.5
POINT_WEIGHTS[48:68] = 0.5


def camera_matrix(image_wh: tuple[int, int]) -> np.ndarray:
    """3x3 intrinsics for an uncalibrated frame: focal = width px, centre = image centre (0-based px centres)."""
    w, h = image_wh
    return np.array([[w, 0.0, (w - 1) / 2.0], [0.0, w, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation (model -> camera) for angles in degrees (convention in the module docstring)."""
    return _ry(-math.radians(yaw)) @ _rx(-math.radians(pitch)) @ _rz(math.radians(roll))


def angles_from_rotation(R: np.ndarray) -> HeadPose:
    """Inverse of rotation_from_angles: a 3x3 rotation -> HeadPose in degrees."""
    R = np.asarray(R, np.float64)
    b = math.asin(float(np.clip(-R[1, 2], -1.0, 1.0)))
    a = math.atan2(R[0, 2], R[2, 2])
    c = math.atan2(R[1, 0], R[1, 1])
    return HeadPose(yaw=-math.degrees(a), pitch=-math.degrees(b), roll=math.degrees(c))


def project_model(rvec, tvec, image_wh: tuple[int, int], model: np.ndarray = MEAN_FACE_MM) -> np.ndarray:
    """Model points (N, 3) mm -> image px (N, 2) with the uncalibrated camera of `camera_matrix`."""
    pts, _ = cv2.projectPoints(np.asarray(model, np.float64), np.asarray(rvec, np.float64).reshape(3, 1),
                               np.asarray(tvec, np.float64).reshape(3, 1), camera_matrix(image_wh), None)
    return pts.reshape(-1, 2)


def _refine(xy, rvec, tvec, K, model, weights):
    """Robust weighted reprojection fit of rotation, translation and the face's width (one scale on x, with a
    prior at 1): faces vary most in width, and solvePnP can neither weight points nor shrug off a bad one."""
    from scipy.optimize import least_squares

    size = float(np.ptp(xy, axis=0).max()) or 1.0
    sw = np.sqrt(weights) / size
    sw_rows = np.repeat(sw, 2)[:, None]      # projectPoints orders rows x0, y0, x1, y1, ...
    prior = 0.01 / 0.08                      # width prior: sigma 8 %, weighed like a 1 % residual

    def residuals(p):
        shape = model * np.array([math.exp(p[6]), 1.0, 1.0])
        proj, _ = cv2.projectPoints(shape, p[:3], p[3:6], K, None)
        r = (proj.reshape(-1, 2) - xy) * sw[:, None]
        return np.r_[r.ravel(), p[6] * prior]

    def jacobian(p):
        # projectPoints gives d(proj)/d(rvec, tvec) exactly; only the width column is a finite difference.
        # That is 2 projections per step instead of 8, which takes the fit from ~1.6 to well under 1 ms.
        shape = model * np.array([math.exp(p[6]), 1.0, 1.0])
        proj, J = cv2.projectPoints(shape, p[:3], p[3:6], K, None)
        eps = 1e-6
        wider, _ = cv2.projectPoints(model * np.array([math.exp(p[6] + eps), 1.0, 1.0]), p[:3], p[3:6], K, None)
        out = np.zeros((len(sw_rows) + 1, 7))
        out[:-1, :6] = J[:, :6] * sw_rows
        out[:-1, 6] = (wider - proj).ravel() / eps * sw_rows[:, 0]
        out[-1, 6] = prior
        return out

    p0 = np.r_[np.ravel(rvec), np.ravel(tvec), 0.0]
    sol = least_squares(residuals, p0, jac=jacobian, loss="soft_l1", f_scale=0.02, x_scale="jac", max_nfev=50)
    return sol.x[:3].reshape(3, 1), sol.x[3:6].reshape(3, 1)


def fit_head_pose(landmarks_xy: np.ndarray, image_wh: tuple[int, int], refine: bool = True,
                  point_scores: np.ndarray | None = None, model: np.ndarray = MEAN_FACE_MM
                  ) -> tuple[HeadPose, np.ndarray, np.ndarray] | None:
    """Fit the 3D mean face to 68 landmarks.

    landmarks_xy: (68, 2) (or (68, 3), the third column ignored) image px; image_wh: frame size (W, H) px;
    point_scores: optional (68,) confidences that scale each point's weight in the refinement. Returns
    (HeadPose in degrees, rvec (3, 1), tvec (3, 1) in mm, camera frame; cv2.projectPoints convention), or None
    when the landmarks are not finite or the fit puts the face behind the camera.

    solvePnP's EPnP gives a start, SOLVEPNP_ITERATIVE (Levenberg-Marquardt) polishes it, and with `refine` a
    robust least-squares pass re-weights points and lets the face's width differ from the mean's.
    """
    xy = np.ascontiguousarray(np.asarray(landmarks_xy, np.float64)[:, :2])
    if xy.shape != (len(model), 2) or not np.isfinite(xy).all():
        return None
    K = camera_matrix(image_wh)
    obj = np.ascontiguousarray(model, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, xy, K, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return None
    ok, rvec, tvec = cv2.solvePnP(obj, xy, K, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    if refine:
        w = POINT_WEIGHTS if point_scores is None else POINT_WEIGHTS * np.clip(point_scores, 0.0, 1.0)
        rvec, tvec = _refine(xy, rvec, tvec, K, obj, w)
    if not np.isfinite(rvec).all() or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
        return None
    R, _ = cv2.Rodrigues(rvec)
    return angles_from_rotation(R), rvec, tvec
