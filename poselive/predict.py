"""`poselive predict IMAGES... --out results.json`: keypoints for still images, written as COCO results.

Body (default): one result per person, `{"file_name", "path" (the image's path as given), "image_id",
"category_id": 1, "keypoints": [x, y, score] * 17 (flat, as COCO results are), "score", "bbox": [x, y, w, h]}` in
image px (0-based pixel centres). People come from the model's own detector, or from --boxes, a json that maps
file name -> [[x, y, w, h], ...] (one person per box) or a COCO keypoint json whose annotation boxes are used (and
whose image ids are copied); a box that is not finite or has no area stops the command, naming it.
--render DIR also writes each image with what was found drawn on it, as DIR/<image stem>.jpg; two images with
one stem stop the command before any work. Faces (--task face): the same with "landmarks" (68 x [x, y, score],
the shape the JSONL and the stream use) instead of "keypoints", and "head_pose" ({"yaw", "pitch", "roll"} in
degrees) when the face model could be fitted.

An image is known by its path as given, or by its file name alone. Every result has an image_id (so
pycocotools' `loadRes` takes the file) and its file_name: the id comes from a COCO --boxes file, else from the
file's stem when it is a number (COCO names images 000000123456.jpg), else it is the next number after all
of those, counting the images in the order given.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from poselive.errors import InputError, PoseliveError, SourceError
from poselive.estimator import check_boxes
from poselive.serialize import (COCO_RESULT_SCORE_DECIMALS, box_json, coco_keypoint_result, head_pose_json,
                                points_json)
from poselive.sources.files import list_images
from poselive.weights import STILL_MODEL

log = logging.getLogger(__name__)



def expand_images(paths: list[str]) -> list[Path]:
    """Files as given; a folder becomes its image files (sources.list_images: img2 before img10). A file named
    twice is read once."""
    out, seen = [], set()
    for p in map(Path, paths):
        for f in list_images(p) if p.is_dir() else [p]:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(f)
    return out


def render_paths(images: list[Path], folder: Path) -> dict[Path, Path]:
    """Where --render draws each image: folder/<image stem>.jpg. Two images that would be drawn on one file
    (1.jpg and 1.png, or a/1.jpg and b/1.jpg), or a drawing that would replace an input image, raise
    InputError before any work starts."""
    out: dict[Path, Path] = {}
    taken: dict[Path, Path] = {}
    inputs = {i.resolve() for i in images}
    for image in images:
        target = folder / f"{image.stem}.jpg"
        key = target.resolve()
        if key in taken:
            raise InputError(f"--render: {taken[key]} and {image} would both be drawn as {target}; render them "
                             f"into separate folders, or rename one")
        if key in inputs:
            raise InputError(f"--render {folder}: drawing {image} as {target} would replace an input image; "
                             f"render into another folder")
        taken[key] = image
        out[image] = target
    return out


def read_boxes(path: str | Path) -> tuple[dict[str, list], dict[str, int]]:
    """(file name -> boxes (x, y, w, h) in image px, file name -> image id) from a --boxes json: either a
    mapping {file_name: [[x, y, w, h], ...]} or a COCO keypoint json (annotation boxes, crowd regions left
    out)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PoseliveError(f"cannot read boxes from {path}: {e}") from None
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        names = {im["id"]: im["file_name"] for im in data["images"]}
        boxes = {n: [] for n in names.values()}
        for a in data["annotations"]:
            if not a.get("iscrowd", 0) and a["image_id"] in names:
                where = f"{path}: annotation {a.get('id', '?')} of {names[a['image_id']]!r}: "
                boxes[names[a["image_id"]]] += check_boxes(a["bbox"], where=where).tolist()
        return boxes, {n: i for i, n in names.items()}
    if not isinstance(data, dict):
        raise PoseliveError(f"{path}: expected {{file_name: [[x, y, w, h], ...]}} or a COCO keypoint json")
    return {name: check_boxes(bs, where=f"{path}: {name!r}: ").tolist() for name, bs in data.items()}, {}


def _lookup(table: dict, image: Path):
    for key in (str(image), image.name):
        if key in table:
            return table[key]
    return None


def image_ids(images: list[Path], ids: dict[str, int]) -> list[int]:
    """The image_id of each image (see the module docstring): from `ids` (file name -> id, from a COCO --boxes
    file), else a numeric file stem, else numbered on from the largest of those."""
    known = []
    for image in images:
        given = _lookup(ids, image)
        known.append(int(given) if given is not None else int(image.stem) if image.stem.isdigit() else None)
    following = max((i for i in known if i is not None), default=0) + 1
    out = []
    for i in known:
        if i is None:
            i, following = following, following + 1
        out.append(i)
    return out


def _body_results(estimator, image: np.ndarray, boxes, path: Path, image_id: int) -> list[dict]:
    people = estimator(image) if boxes is None else estimator(image, boxes=np.asarray(boxes).reshape(-1, 4))
    # file_name is what COCO tools match on; path (as given) tells apart images that share a name.
    return [{"file_name": path.name, "path": str(path),
             **coco_keypoint_result(image_id, p.points, p.score, bbox=box_json(p.bbox))} for p in people]


def _face_results(estimator, image: np.ndarray, boxes, path: Path, image_id: int) -> list[dict]:
    faces = estimator(image) if boxes is None else estimator(image, boxes=boxes)
    out = []
    for f in faces:
        r = {"file_name": path.name, "path": str(path), "image_id": image_id, "landmarks": points_json(f.points),
             "score": round(float(f.score), COCO_RESULT_SCORE_DECIMALS), "bbox": box_json(f.bbox)}
        if f.head_pose is not None:
            r["head_pose"] = head_pose_json(f.head_pose)
        out.append(r)
    return out


def _render(image: np.ndarray, results: list[dict], out: Path) -> None:
    """The image with each result's skeleton (body) or landmarks (face) and box drawn, written to `out`."""
    from poselive.render import draw_skeleton, line_thickness
    from poselive.schemas import COCO17, FACE68
    t = line_thickness(image)
    for r in results:
        key, schema = ("keypoints", COCO17) if "keypoints" in r else ("landmarks", FACE68)
        draw_skeleton(image, np.asarray(r[key], np.float64).reshape(-1, 3), schema, thickness=t)
        x, y, w, h = (int(round(v)) for v in r["bbox"])
        cv2.rectangle(image, (x, y), (x + w, y + h), (200, 200, 200), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image):
        raise PoseliveError(f"cannot write {out}")


def _face_estimator(args):
    from poselive.face_estimator import FaceEstimator
    return FaceEstimator(args.model or "face-lite", device=args.device)


def predict_command(args) -> int:
    from poselive.image_header import pixel_limit
    from poselive.paths import check_paths
    from poselive.sources import read_image
    # Inputs and outputs are checked before any model loads (seconds), so a typo costs nothing.
    check_paths(args.images, files={"--out": args.out}, folders={"--render": args.render})
    images = expand_images(args.images)
    if not images:
        raise PoseliveError("no images given (folders given held no .jpg/.png files)")
    out = Path(args.out)
    if out.resolve() in {i.resolve() for i in images}:
        raise InputError(f"--out {out} is one of the images; writing it would replace the image")
    drawn = render_paths(images, Path(args.render)) if args.render else {}
    max_pixels = pixel_limit(args.max_megapixels)
    boxes, ids = read_boxes(args.boxes) if args.boxes else ({}, {})
    if args.task == "face":
        estimator, run = _face_estimator(args), _face_results
    else:
        from poselive.estimator import PoseEstimator
        estimator = PoseEstimator(args.model or STILL_MODEL, device=args.device, detector=args.detector,
                                  det_tiles=args.det_tiles)
        run = _body_results
    results, done, with_any = [], 0, 0
    for path, image_id in zip(images, image_ids(images, ids)):
        if not path.is_file():
            log.warning("skipping %s: no such file", path)
            continue
        try:
            image = read_image(path, max_pixels)
        except SourceError as e:
            log.warning("skipping %s", e)  # the message names the file
            continue
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        given = _lookup(boxes, path) if args.boxes else None
        if args.boxes and given is None:
            log.warning("%s has no entry in %s; detecting people instead", path.name, args.boxes)
        found = run(estimator, image, given, path, image_id)
        if args.render:
            _render(image, found, drawn[path])
        results += found
        done += 1
        with_any += bool(found)
    if done == 0:
        raise PoseliveError(f"none of the {len(images)} images could be read")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")  # renamed into place: a crash never leaves half a json
    tmp.write_text(json.dumps(results))
    os.replace(tmp, out)
    what = "faces" if args.task == "face" else "people"
    skipped = f", {len(images) - done} skipped" if done < len(images) else ""
    print(f"{len(results)} {what} in {with_any} of {done} images read{skipped} -> {out}")
    return 0
