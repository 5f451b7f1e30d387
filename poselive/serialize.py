"""Records -> JSON-ready dicts: the one place where numbers are rounded for output. The JSONL lines
(`frame_json`), the stream's frame messages (publish/messages.py), `poselive predict`'s results and the COCO
results that `poselive eval` scores are all built from these functions.

The rounding rule:
- image px (x, y, boxes): 2 decimals (1/100 px, far below what the network resolves);
- scores (joints, landmarks, people, faces): 4 decimals;
- times in seconds: 4 decimals; angles in degrees, milliseconds and frame rates: 2 decimals; 0..1 image
  fractions (nx, ny): 4 decimals;
- COCO keypoint results (`coco_keypoint_result`, the format pycocotools reads) are one flat list of numbers at 2
  decimals, joint scores included, and the result's score keeps 5 decimals (AP ranks results by it).
Rounding is Python's `round` on Python floats (correctly rounded), never numpy's.
"""
from __future__ import annotations

import numpy as np

from poselive.records import Face, HeadPose, Person

PX_DECIMALS = 2
SCORE_DECIMALS = 4
TIME_DECIMALS = 4
DEGREE_DECIMALS = 2
FRACTION_DECIMALS = 4
COCO_RESULT_SCORE_DECIMALS = 5


def px(v) -> float:
    return round(float(v), PX_DECIMALS)


def score(v) -> float:
    return round(float(v), SCORE_DECIMALS)


def seconds(v) -> float:
    return round(float(v), TIME_DECIMALS)


def hundredths(v) -> float:
    """Milliseconds, frames per second, degrees."""
    return round(float(v), DEGREE_DECIMALS)


def box_json(box) -> list[float]:
    """(x, y, w, h) image px -> [x, y, w, h]."""
    return [px(v) for v in box]


def points_json(points: np.ndarray) -> list[list[float]]:
    """(K, 3) x, y image px and score -> [[x, y, score], ...]."""
    return [[round(x, PX_DECIMALS), round(y, PX_DECIMALS), round(s, SCORE_DECIMALS)]
            for x, y, s in np.asarray(points, np.float64).tolist()]


def head_pose_json(pose: HeadPose) -> dict:
    return {"yaw": hundredths(pose.yaw), "pitch": hundredths(pose.pitch), "roll": hundredths(pose.roll)}


def person_json(p: Person) -> dict:
    return {"track_id": int(p.track_id), "bbox": box_json(p.bbox), "score": score(p.score),
            "keypoints": points_json(p.points)}


def face_json(f: Face) -> dict:
    d = {"track_id": int(f.track_id), "bbox": box_json(f.bbox), "score": score(f.score),
         "landmarks": points_json(f.points)}
    if f.head_pose is not None:
        d["head_pose"] = head_pose_json(f.head_pose)
    return d


def frame_json(index: int, time_s: float, people: list[Person], faces: list[Face] = ()) -> dict:
    """The JSONL line of one frame (README documents it). `people` and `faces` are always lists, empty when
    nobody (or no face, or no face task) is there."""
    return {"frame": int(index), "time": seconds(time_s), "people": [person_json(p) for p in people],
            "faces": [face_json(f) for f in faces]}


def joints_json(points: np.ndarray, names: tuple[str, ...], width: int, height: int) -> list[dict]:
    """(K, 3) x, y image px and score -> [{"name", "x", "y", "nx", "ny", "score"}, ...] (the stream's joints);
    nx = (x + 0.5) / width, ny = (y + 0.5) / height."""
    out = []
    for name, (x, y, s) in zip(names, np.asarray(points, np.float64).tolist()):
        out.append({"name": name, "x": round(x, PX_DECIMALS), "y": round(y, PX_DECIMALS),
                    "nx": round((x + 0.5) / width, FRACTION_DECIMALS),
                    "ny": round((y + 0.5) / height, FRACTION_DECIMALS), "score": round(s, SCORE_DECIMALS)})
    return out


def coco_keypoint_result(image_id: int, keypoints: np.ndarray, result_score: float, **extra) -> dict:
    """A COCO keypoint result from keypoints (K, 3): x, y in image px and per-joint score."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, 3)
    return {"image_id": int(image_id), "category_id": 1, "keypoints": [px(v) for v in kp.ravel()],
            "score": round(float(result_score), COCO_RESULT_SCORE_DECIMALS), **extra}
