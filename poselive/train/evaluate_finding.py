"""`poselive eval --task track`, `--task empty` and `--task thresholds`: does the product find real people, and only them?

* track: the live pipeline (its shipped defaults) through a video, scored against MOT ground truth
  (poselive.mot_metrics: MOTA, IDF1, ID switches, precision, recall, mostly tracked / lost), or a JSONL that
  `poselive track` / `run --json` wrote, scored as it is. With `--repeats N`, N more runs of the video, each
  frame with noise of one grey level added (seeded: as a re-encoding of the video would differ), and the spread
  of the figures: on vtest.avi such noise moved MOTA by 7 points and IDF1 by 12 (2026-12-03), so one run says
  little about a change of a few points.
* empty: photos with nobody in them. Still photos go through `PoseEstimator` as `poselive predict` runs it;
  the live pipeline sees each photo as a short still clip (a camera pointed at an empty room: FRAMES_PER_PHOTO
  frames, a fresh pipeline per photo). Reported: the share of photos where anybody is reported (in any frame,
  for the live pipeline), and people per photo.
* thresholds: the precision/recall table the default thresholds are chosen from (our validation split's people
  and the held-out empty photos, over detector x person-score thresholds).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.mot_metrics import FrameBoxes, frame_boxes, read_jsonl_people, read_mot_gt, score_tracks
from poselive.tables import format_table
from poselive.weights import STILL_MODEL

log = logging.getLogger(__name__)

FRAMES_PER_PHOTO = 10   # a third of a second of a 30 fps camera on one empty scene


@dataclass(frozen=True)
class EmptyScores:
    """Photos with nobody in them: photos (how many), with_people (photos where anybody was reported),
    people (reported in all, the most in one frame for the live pipeline), top_score (the best-scored)."""
    photos: int
    with_people: int
    people: int
    top_score: float

    @property
    def share_with_people(self) -> float:
        return self.with_people / max(self.photos, 1)

    @property
    def people_per_photo(self) -> float:
        return self.people / max(self.photos, 1)


def track_video(pipeline, video: str | Path, last_frame: int, jsonl: Path | None = None,
                noise_seed: int | None = None) -> dict[int, FrameBoxes]:
    """Run `pipeline` over `video` up to frame index `last_frame`; per frame the tracked people as the JSONL
    records them (same rounding), also written to `jsonl` when given (under its name only when finished).
    noise_seed: add -1, 0 or +1 grey level to every pixel of every frame, drawn from this seed."""
    import dataclasses
    from poselive.outputs import JsonlWriter
    from poselive.serialize import frame_json
    from poselive.progress import FrameProgress
    from poselive.sources import open_source
    out: dict[int, FrameBoxes] = {}
    writer = JsonlWriter(jsonl) if jsonl else None
    pipeline.reset()
    try:
        with open_source(str(video)) as source, FrameProgress(last_frame + 1, source.name) as progress:
            for frame in source:
                if frame.index > last_frame:
                    break
                if noise_seed is not None:
                    frame = dataclasses.replace(frame, image=grey_level_noise(frame.image, noise_seed, frame.index))
                result = pipeline(frame)
                d = frame_json(frame.index, frame.video_time, result.people, result.faces)
                if writer is not None:
                    writer.write(d)
                out[frame.index] = frame_boxes(d)
                progress.update(len(out))
    except BaseException:
        if writer is not None:
            writer.close_unfinished()
        raise
    if writer is not None:
        writer.close()
    return out


def grey_level_noise(image: np.ndarray, seed: int, index: int) -> np.ndarray:
    """image (uint8) with -1, 0 or +1 added to every value, drawn from (seed, index); clipped to 0..255."""
    rng = np.random.default_rng([seed, index])
    noisy = image.astype(np.int16) + rng.integers(-1, 2, image.shape, dtype=np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def empty_photos(estimator=None, pipeline=None, photos: list[Path] = (), frames: int = FRAMES_PER_PHOTO
                 ) -> EmptyScores:
    """Score either a PoseEstimator (still photos) or a Pipeline (each photo as `frames` still frames) on
    photos that show nobody. Unreadable photos are skipped with a warning."""
    import cv2
    from tqdm import tqdm

    from poselive.records import Frame
    n = with_people = people = 0
    top = 0.0
    for path in tqdm(photos, desc="empty photos", unit="photo", mininterval=5):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        if estimator is not None:
            found = [list(estimator(image))]
        else:
            pipeline.reset()
            found = [pipeline(Frame(image, i, 0.0, i / 30.0)).people for i in range(frames)]
        most = max(len(f) for f in found)
        n += 1
        with_people += most > 0
        people += most
        top = max([top] + [p.score for f in found for p in f])
    return EmptyScores(n, with_people, people, top)


def _pipeline(args):
    from poselive.live import build_pipeline
    return build_pipeline("body", device=args.device, body_model=args.model or "body-lite", detector=args.detector)


def eval_track(args) -> int:
    if not args.gt:
        raise PoseliveError("--task track needs --gt GT.txt (MOT ground truth) and a video or JSONL")
    if len(args.inputs or []) != 1:
        raise PoseliveError("--task track scores one video or one JSONL at a time")
    source = Path(args.inputs[0])
    if not source.exists():
        raise PoseliveError(f"cannot find {source}: no such file")
    repeats = args.repeats
    if repeats and source.suffix.lower() == ".jsonl":
        raise PoseliveError("--repeats reruns the video: give the video, not a JSONL")
    gt, ignored = read_mot_gt(args.gt)
    frames = sorted(gt)
    t0 = time.perf_counter()
    if source.suffix.lower() == ".jsonl":
        hyp, what = read_jsonl_people(source), f"{source} (as written)"
    else:
        pipeline = _pipeline(args)  # one for every run: track_video resets it first
        jsonl = Path(args.out).with_suffix(".jsonl") if args.out else None
        hyp = track_video(pipeline, source, frames[-1], jsonl)
        what = f"the live pipeline (detector {args.detector}) on {source}"
    s = score_tracks(gt, ignored, hyp, frames)
    runs = [("as it is", s)]
    for seed in range(1, repeats + 1):
        runs.append((f"noise {seed}", score_tracks(gt, ignored, track_video(pipeline, source, frames[-1],
                                                                            noise_seed=seed), frames)))
    print(f"poselive eval --task track: {what}, frames {frames[0]}-{frames[-1]} against {args.gt} "
          f"({s.people} people, {s.gt_boxes} boxes; IoU 0.5)")
    rows = [[name, 100 * r.mota, 100 * r.idf1, r.id_switches, 100 * r.precision, 100 * r.recall,
             f"{r.mostly_tracked} of {r.people}", r.mostly_lost, r.false_positives, r.misses, r.track_ids]
            for name, r in runs]
    if repeats:
        rows.append(["median"] + [float(np.median([row[i] for row in rows])) for i in range(1, 6)]
                    + ["-", "-"] + [float(np.median([row[i] for row in rows])) for i in (8, 9, 10)])
    print(format_table(["run", "MOTA", "IDF1", "ID switches", "precision", "recall", "mostly tracked",
                        "mostly lost", "false people", "missed", "ids"], rows, decimals=1))
    report = {"task": "track", "source": str(source), "gt": str(args.gt), "detector": str(args.detector),
              "seconds": round(time.perf_counter() - t0, 1), **s.as_dict()}
    if repeats:
        report["noisy_runs"] = [r.as_dict() for _, r in runs[1:]]
        report["median_of_runs"] = {k: float(np.median([r.as_dict()[k] for _, r in runs]))
                                    for k in ("mota", "idf1", "id_switches", "precision", "recall")}
    _write(args.out, report)
    return 0


def eval_empty(args) -> int:
    from poselive.estimator import PoseEstimator
    from poselive.train.coco_data import data_root
    from poselive.train.det_data import negative_split
    if args.inputs:
        photos = []
        for p in map(Path, args.inputs):
            if not p.exists():
                raise PoseliveError(f"cannot find {p}: no such file or folder")
            photos += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".jpg", ".jpeg", ".png")) \
                if p.is_dir() else [p]
        where = ", ".join(args.inputs)
    else:
        root = data_root(args.data[0] if args.data else None)
        photos = negative_split(root, "val")
        if not photos:
            raise PoseliveError(f"no empty photos under {root / 'negatives'}; pass folders of photos")
        where = f"the held-out empty photos of {root / 'negatives' / 'scene15'}"
    print(f"poselive eval --task empty: {len(photos)} photos with nobody in them ({where}); detector {args.detector}")
    rows, report = [], {}
    modes = [m.strip() for m in args.modes.split(",")]
    for mode in modes:
        if mode == "predict":
            est = PoseEstimator(args.model or STILL_MODEL, device=args.device, detector=args.detector,
                                det_tiles=args.det_tiles)
            s = empty_photos(estimator=est, photos=photos)
        elif mode == "live":
            s = empty_photos(pipeline=_pipeline(args), photos=photos)
        else:
            raise PoseliveError(f"unknown mode {mode!r}; use predict, live or predict,live")
        label = "predict (still photo)" if mode == "predict" else f"live pipeline ({FRAMES_PER_PHOTO} frames a photo)"
        rows.append([label, s.photos, s.with_people, f"{100 * s.share_with_people:.1f}%", s.people_per_photo,
                     s.top_score])
        report[mode] = asdict(s) | {"share_with_people": s.share_with_people}
    print(format_table(["mode", "photos", "with people", "share", "people / photo", "top score"], rows,
                       decimals=3))
    _write(args.out, {"task": "empty", "photos": len(photos), "detector": str(args.detector), **report})
    return 0


def _write(out: str | None, report: dict) -> None:
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))
        print(f"metrics written to {path}")


DET_THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
PERSON_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


@dataclass(frozen=True)
class OperatingPoint:
    """One (detector threshold, person-score threshold) pair: on photos of people, recall at OKS 0.5 with own
    detections, precision (reported people that match one at OKS 0.5) and OKS AP; on empty photos, the share
    with anybody reported and people per photo."""
    det_threshold: float
    person_threshold: float
    recall: float
    precision: float
    ap: float
    empty_share: float
    empty_people: float


def operating_points(estimator, evalset, empty: list[Path]) -> list[OperatingPoint]:
    """Every pair of DET_THRESHOLDS x PERSON_THRESHOLDS, for `estimator` as configured (flip test, refine);
    detection and keypoints run once per photo, at the lowest thresholds, and are then cut at each pair."""
    import cv2
    from tqdm import tqdm

    from poselive.body_metrics import coco_ground_truth, keypoint_result, score_body
    low = min(DET_THRESHOLDS)

    def candidates(image):
        det = estimator.detect(image, low)
        return det[:, 4], estimator.candidates(image, det[:, :4])

    photos = {}
    for image_id, path in tqdm(evalset.image_paths.items(), desc="people photos", unit="photo", mininterval=5):
        if (image := cv2.imread(str(path), cv2.IMREAD_COLOR)) is not None:
            photos[image_id] = candidates(image)
    blank = []
    for path in tqdm(empty, desc="empty photos", unit="photo", mininterval=5):
        if (image := cv2.imread(str(path), cv2.IMREAD_COLOR)) is not None:
            blank.append(candidates(image))
    gt = coco_ground_truth(evalset.coco)
    n_people = max(evalset.num_people, 1)
    points = []
    for t in DET_THRESHOLDS:
        for s in PERSON_THRESHOLDS:
            def reported(scores, people):
                return estimator.pick([p for p, d in zip(people, scores) if d >= t], s)
            results = [keypoint_result(i, p.keypoints, p.score) for i, (sc, ppl) in photos.items()
                       for p in reported(sc, ppl)]
            b = score_body(gt, results)
            counts = [len(reported(sc, ppl)) for sc, ppl in blank]
            points.append(OperatingPoint(t, s, b.recall_oks50, b.recall_oks50 * n_people / max(len(results), 1),
                                         b.ap, float(np.mean([c > 0 for c in counts])) if counts else 0.0,
                                         float(np.mean(counts)) if counts else 0.0))
    return points


def eval_thresholds(args) -> int:
    """The precision/recall table the defaults' thresholds are chosen from: our validation split (people) and
    the held-out empty photos, for still photos (flip test, refine) and the live pipeline's single pass."""
    from poselive.estimator import PoseEstimator
    from poselive.train.coco_data import data_root
    from poselive.train.det_data import negative_split
    from poselive.train.eval_set import load_eval_set
    evalset = load_eval_set(args.data)
    empty = negative_split(data_root(None), "val")
    print(f"poselive eval --task thresholds: detector {args.detector}, model {args.model or 'the defaults'}: "
          f"{evalset.num_people} people in {len(evalset.image_paths)} photos, {len(empty)} empty photos")
    report = {}
    for mode in [m.strip() for m in args.modes.split(",")]:
        still = mode == "predict"
        # Each mode's own keypoint model unless one is named: STILL_MODEL for photos, body-lite live.
        model = args.model or (STILL_MODEL if still else "body-lite")
        est = PoseEstimator(model, device=args.device, detector=args.detector,
                            det_threshold=min(DET_THRESHOLDS), refine=still, flip_test=still)
        points = operating_points(est, evalset, empty)
        print(format_table(["detector", "person score", "recall@OKS0.5", "precision", "OKS AP", "empty photos "
                            "with people", "people / empty photo"],
                           [[p.det_threshold, p.person_threshold, p.recall, p.precision, p.ap, p.empty_share,
                             p.empty_people] for p in points], title=f"{mode}: "
                           + ("flip test and refine, as `poselive predict`" if still else
                              "one pass a crop, as the live pipeline"), decimals=3))
        report[mode] = [asdict(p) for p in points]
    _write(args.out, {"task": "thresholds", "detector": str(args.detector), **report})
    return 0
