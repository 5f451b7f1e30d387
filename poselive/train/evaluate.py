"""`poselive eval`: score a model on COCO keypoint json + images (body) or .pts folders (face).

Body, by default on our hand-labelled validation split (the images of fashion_a, fashion_b, pelota and
coco_mini whose people `coco_data.split_of` marks 'val'):
  * GT boxes: one crop per annotated person (the GT box, expanded 1.25x as always) -> OKS AP/AR, PCK@0.2 of
    the box's longer side, mean error in px, recall at OKS 0.5;
  * --detections: the model's own person detector instead of GT boxes -> AP/AR and recall at OKS 0.5;
  * --baseline: MediaPipe BlazePose Full on the same crops as ours (cut at 3x our input's resolution), and
    with --detections also on each whole image, its own detector choosing the (one) person.
Prints one table (methods side by side), per-joint and per-set PCK, and writes the numbers as json to --out.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from poselive.body_metrics import (BodyScores, box_ap50, coco_ground_truth, format_comparison, keypoint_result,
                                   pck, people_boxed, score_body)
from poselive.errors import PoseliveError
from poselive.tables import format_table
from poselive.train.eval_set import EvalSet, load_eval_set
from poselive.weights import STILL_MODEL
from poselive.transforms import apply_matrix, box_to_crop, crop_matrix, invert_matrix, warp_crop

log = logging.getLogger(__name__)

# MediaPipe sees our crop region cut 384 px tall (288x384 for body-lite's 3:4 crops): the same view of the
# person, at a resolution its own 256 px person detector can use, and the same whatever our input size is, so
# its figures stay comparable across our models.
MEDIAPIPE_CROP_HEIGHT = 384


@dataclass
class PairedRun:
    """One method on GT-box crops: COCO results, and per GT person (in EvalSet order) its prediction (M, K, 3),
    GT keypoints (M, K, 3), GT box (M, 4) and set name."""
    results: list[dict]
    pred: np.ndarray
    gt: np.ndarray
    boxes: np.ndarray
    datasets: list[str]

    def scores(self, gt_coco) -> BodyScores:
        return score_body(gt_coco, self.results, (self.pred, self.gt, self.boxes))

    def pck_by_set(self) -> dict[str, float]:
        names = np.array(self.datasets)
        return {s: pck(self.pred[names == s], self.gt[names == s], self.boxes[names == s])[0]
                for s in dict.fromkeys(self.datasets)}


def _read(path: Path) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        log.warning("skipping unreadable image %s", path)
    return img


def _progress(items, desc: str):
    from tqdm import tqdm
    return tqdm(items, desc=desc, file=sys.stderr, leave=False, mininterval=2)


def _gt_arrays(people: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p["keypoints"] for p in people], np.float64).reshape(len(people), -1, 3),
            np.array([p["bbox"] for p in people], np.float64).reshape(len(people), 4))


def run_gt_boxes(estimator, evalset: EvalSet) -> PairedRun:
    """The estimator on one crop per annotated person (its GT box)."""
    results, preds, gts, boxes, sets = [], [], [], [], []
    for image_id in _progress(evalset.image_paths, "GT boxes"):
        people = evalset.people[image_id]
        if not people or (image := _read(evalset.image_paths[image_id])) is None:
            continue
        gt, box = _gt_arrays(people)
        for person in estimator(image, boxes=box):
            results.append(keypoint_result(image_id, person.keypoints, person.score))
            preds.append(person.keypoints)
        gts.append(gt)
        boxes.append(box)
        sets += [evalset.dataset[image_id]] * len(people)
    return PairedRun(results, np.array(preds, np.float64), np.concatenate(gts), np.concatenate(boxes), sets)


@dataclass
class DetectionRun:
    """The estimator with its own detector: COCO results (what `PoseEstimator(image)` returns), and the
    detector alone: box recall (share of annotated people whose GT box some detection overlaps at IoU >= 0.5,
    whatever keypoints were found in it; and at IoU >= 0.3, found but with a loose box), box AP at IoU 0.5
    against every person box (with or without keypoints), boxes found."""
    results: list[dict]
    box_recall: float
    box_recall_iou30: float
    box_ap50: float
    boxes_found: int


def run_detections(estimator, evalset: EvalSet) -> DetectionRun:
    results, matched, loose, found = [], 0, 0, 0
    all_gt, all_det = [], []
    person_boxes: dict[int, list] = {i: [] for i in evalset.image_paths}
    for a in evalset.coco["annotations"]:
        if not a.get("iscrowd", 0):
            person_boxes[a["image_id"]].append(a["bbox"])
    for image_id in _progress(evalset.image_paths, "detections"):
        if (image := _read(evalset.image_paths[image_id])) is None:
            continue
        det = estimator.detect(image)
        boxes = det[:, :4]
        found += len(boxes)
        gt_boxes = np.array([p["bbox"] for p in evalset.people[image_id]], np.float64)
        matched += people_boxed(gt_boxes, boxes)
        loose += people_boxed(gt_boxes, boxes, iou=0.3)
        all_det.append(det)
        all_gt.append(np.array(person_boxes[image_id], np.float64))
        for person in estimator.find(image, boxes):
            results.append(keypoint_result(image_id, person.keypoints, person.score))
    n = max(evalset.num_people, 1)
    return DetectionRun(results, matched / n, loose / n, box_ap50(all_gt, all_det), found)


def run_mediapipe(evalset: EvalSet, input_wh: tuple[int, int]) -> PairedRun:
    """MediaPipe BlazePose Full on the crops our model sees (GT box -> box_to_crop, 1.25x), cut
    MEDIAPIPE_CROP_HEIGHT px tall (`input_wh` gives the aspect). A person MediaPipe does not find gets no result
    and scores as missed (its keypoints are NaN, so no joint of it is within any threshold)."""
    from poselive.baselines.mediapipe_pose import mediapipe_on_crops
    out_wh = (round(MEDIAPIPE_CROP_HEIGHT * input_wh[0] / input_wh[1]), MEDIAPIPE_CROP_HEIGHT)
    crops, mats, owners, gts, boxes, sets = [], [], [], [], [], []
    for image_id in _progress(evalset.image_paths, "MediaPipe crops"):
        people = evalset.people[image_id]
        if not people or (image := _read(evalset.image_paths[image_id])) is None:
            continue
        gt, box = _gt_arrays(people)
        for b in box:
            m = crop_matrix(box_to_crop(b, input_wh, 1.25), out_wh)
            crops.append(warp_crop(image, m, out_wh))
            mats.append(m)
            owners.append(image_id)
        gts.append(gt)
        boxes.append(box)
        sets += [evalset.dataset[image_id]] * len(people)
    kps, found = mediapipe_on_crops(np.stack(crops))
    preds, results = np.full(kps.shape, np.nan), []
    for i, m in enumerate(mats):
        if not found[i]:
            continue
        preds[i] = np.c_[apply_matrix(invert_matrix(m), kps[i, :, :2]), kps[i, :, 2]]
        results.append(keypoint_result(owners[i], preds[i], float(kps[i, :, 2].mean())))
    log.info("MediaPipe found a pose in %d of %d crops", int(found.sum()), len(found))
    return PairedRun(results, preds, np.concatenate(gts), np.concatenate(boxes), sets)


def run_mediapipe_whole_images(evalset: EvalSet) -> list[dict]:
    """MediaPipe BlazePose Full on each whole image, its own person detector choosing where to look: the
    baseline for our own-detections row. BlazePose tracks one person, so it returns at most one an image."""
    from poselive.baselines.mediapipe_pose import mediapipe_on_images
    ids = list(evalset.image_paths)
    kps, found = mediapipe_on_images([evalset.image_paths[i] for i in ids])
    log.info("MediaPipe found a person in %d of %d whole images", int(found.sum()), len(found))
    return [keypoint_result(i, kp, float(kp[:, 2].mean())) for i, kp, f in zip(ids, kps, found) if f]


def _model_label(spec: str) -> str:
    p = Path(spec)
    return spec if p.suffix != ".pt" else f"{p.parent.name}/{p.name}"


def eval_body(args) -> int:
    from poselive.estimator import PoseEstimator
    evalset = load_eval_set(args.data)
    if evalset.num_people == 0:
        raise PoseliveError("no annotated people with keypoints to evaluate on")
    gt_coco = coco_ground_truth(evalset.coco)
    model = args.model or STILL_MODEL
    estimator = PoseEstimator(model, device=args.device, detector=args.detector, det_size=args.det_size,
                              det_threshold=args.det_threshold, det_tiles=args.det_tiles)
    if args.detections:
        estimator.detector  # loaded now: a missing or wrong detector fails before minutes of GT-box work
    label = _model_label(str(model))
    n_people = evalset.num_people
    where = "our validation split" if args.data is None else ", ".join(args.data)
    detector = f" (people found by {_model_label(str(args.detector))})" if args.detections else ""
    print(f"poselive eval: {label}{detector} on {where}: {len(evalset.image_paths)} images, {n_people} people "
          f"with keypoints")

    runs: dict[str, PairedRun] = {f"{label}, GT boxes": run_gt_boxes(estimator, evalset)}
    baseline = args.baseline  # off once MediaPipe is found missing: said once, not tried again below
    if baseline:
        try:
            runs["MediaPipe Full, same crops"] = run_mediapipe(evalset, estimator.keypoints.cfg.input_wh)
        except PoseliveError as e:
            print(f"baseline skipped: {e}")
            baseline = False
    methods = {name: run.scores(gt_coco) for name, run in runs.items()}
    if args.detections:
        detection = run_detections(estimator, evalset)
        methods[f"{label}, own detector"] = score_body(gt_coco, detection.results)
        if baseline:
            try:
                methods["MediaPipe Full, own detector (1 a frame)"] = score_body(
                    gt_coco, run_mediapipe_whole_images(evalset))
            except PoseliveError as e:
                print(f"baseline skipped: {e}")

    print()
    print(format_comparison(methods))
    if args.detections:
        print(f"detector alone: {detection.boxes_found} boxes; box recall@IoU0.5 {detection.box_recall:.3f} of the "
              f"{n_people} people (@IoU0.3 {detection.box_recall_iou30:.3f}); box AP@IoU0.5 {detection.box_ap50:.3f} "
              "(all person boxes)")
    by_set = {name: run.pck_by_set() for name, run in runs.items()}
    set_names = list(dict.fromkeys(s for d in by_set.values() for s in d))
    people_per_set = {s: sum(1 for d in next(iter(runs.values())).datasets if d == s) for s in set_names}
    print()
    print(format_table(["PCK@0.2 per set"] + list(by_set),
                       [[f"{s} ({people_per_set[s]})"] + [by_set[m].get(s) for m in by_set] for s in set_names],
                       decimals=3))
    if args.out:
        report = {"task": "body", "model": str(model), "data": args.data or "validation split",
                  "images": len(evalset.image_paths), "people": n_people,
                  "methods": {name: s.as_dict() for name, s in methods.items()},
                  "detector": str(args.detector) if args.detections else None,
                  "detector_box_recall_iou50": detection.box_recall if args.detections else None,
                  "detector_box_recall_iou30": detection.box_recall_iou30 if args.detections else None,
                  "detector_box_ap50": detection.box_ap50 if args.detections else None,
                  "pck_by_set": by_set}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"\nmetrics written to {args.out}")
    return 0


def eval_command(args) -> int:
    if args.task in ("track", "empty", "thresholds"):
        from poselive.train import evaluate_finding
        return {"track": evaluate_finding.eval_track, "empty": evaluate_finding.eval_empty,
                "thresholds": evaluate_finding.eval_thresholds}[args.task](args)
    if args.task == "face":
        from poselive.train.evaluate_face import eval_face
        return eval_face(args)
    return eval_body(args)
