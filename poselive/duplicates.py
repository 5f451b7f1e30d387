"""Two crops can converge on one body (a track and a detection; two detections whose boxes, refined from their
joints, became the same; a close-up's face-sized crop inside its whole-body crop): keep the better-scored one.

Used by the live pipeline (after decode, before tracking) and by `PoseEstimator` on still images."""
from __future__ import annotations

import numpy as np

from poselive.boxes import box_intersection, box_iou
from poselive.records import Person
from poselive.schemas import COCO17
from poselive.tracking import keypoint_similarity

# Two people are one when their boxes overlap by more than DUPLICATE_IOU, or when one box lies >= 70% inside the
# other and their confident joints coincide (OKS at 3x COCO's sigmas above SAME_POSE_OKS). On the close-up clip
# nested duplicates scored OKS 0.56-0.96 where IoU was 0.17-0.5. Both conditions are needed for the nested
# case, because at 3x sigmas two walkers side by side share their hips.
DUPLICATE_IOU = 0.6
SAME_POSE_OKS = 0.5


def distinct_people(people: list[Person], iou: float = DUPLICATE_IOU, same_pose_oks: float = SAME_POSE_OKS,
                    nested: bool = True) -> list[int]:
    """Indices (ascending) of the people to keep: of each group of duplicates, the best-scored one.

    nested: also merge a box nested in another with the same pose (the close-up case of live video). Still
    photos leave it off: in crowded coco_mini scenes it merged real people (recall at OKS 0.5 0.198 -> 0.186)."""
    if len(people) < 2:
        return list(range(len(people)))
    order = sorted(range(len(people)), key=lambda i: -people[i].score)
    boxes = np.array([people[i].bbox for i in order], np.float64)
    kps = np.stack([np.asarray(people[i].keypoints, np.float64) for i in order])
    area = np.maximum(boxes[:, 2] * boxes[:, 3], 1.0)
    same = box_iou(boxes, boxes) > iou
    if nested:
        inside = box_intersection(boxes, boxes) / np.minimum(area[:, None], area[None]) >= 0.7
        oks, shared = keypoint_similarity(kps, kps, area, area, 3.0 * np.asarray(COCO17.sigmas), 0.3)
        same |= inside & (oks > same_pose_oks) & (shared >= 3)
    chosen: list[int] = []
    for a in range(len(order)):
        if not any(same[a, b] for b in chosen):
            chosen.append(a)
    return sorted(order[a] for a in chosen)
