"""The ground truth `poselive eval` scores body models against: COCO keypoint json files and their images,
by default our validation split of the hand-labelled sets (`load_eval_set`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.train.coco_data import HAND_SETS, data_root, read_coco, split_of


@dataclass(frozen=True)
class EvalSet:
    """Ground truth to score against. coco: a COCO keypoint dict (images, annotations, categories) merged from
    one or more files, with fresh image and annotation ids so they never collide; image_paths: image id ->
    file; dataset: image id -> the set it came from (the json's folder name); people: image id -> its
    annotations that have keypoints and are not crowd regions, in file order (the people we crop)."""
    coco: dict
    image_paths: dict[int, Path]
    dataset: dict[int, str]
    people: dict[int, list[dict]]

    @property
    def num_people(self) -> int:
        return sum(len(p) for p in self.people.values())


def _image_file(json_path: Path, file_name: str) -> Path:
    """Images sit in `images/` beside the json (our layout), or beside it."""
    p = json_path.parent / "images" / file_name
    return p if p.exists() else json_path.parent / file_name


def load_eval_set(json_paths: list[str | Path] | None = None, root: str | Path | None = None) -> EvalSet:
    """Merge COCO keypoint files into one EvalSet. json_paths None: our validation split of HAND_SETS under
    the data root (every image with a person split_of() marks 'val'); given files are used whole."""
    if json_paths is None:
        base = data_root(str(root) if root else None)
        json_paths = [base / "body" / s / "person_keypoints.json" for s in HAND_SETS]
        missing = [str(p) for p in json_paths if not p.exists()]
        if missing:
            raise PoseliveError(f"validation data not found: {missing[0]}; set POSELIVE_DATA or pass --data")
        keep = {Path(p): {r.image_id for r in read_coco(p) if split_of(r) == "val"} for p in json_paths}
    else:
        json_paths = [Path(p) for p in json_paths]
        for p in json_paths:
            if not p.is_file():
                raise PoseliveError(f"no COCO keypoint file at {p}")
        keep = {p: None for p in json_paths}
    images, annotations, paths, dataset = [], [], {}, {}
    for jp in json_paths:
        try:
            d = json.loads(Path(jp).read_text())
        except (OSError, ValueError) as e:
            raise PoseliveError(f"cannot read {jp} as COCO keypoint json: {e}") from None
        new_id = {}
        for im in d.get("images", []):
            if keep[Path(jp)] is not None and im["id"] not in keep[Path(jp)]:
                continue
            new_id[im["id"]] = len(images) + 1
            images.append({**im, "id": new_id[im["id"]]})
            paths[new_id[im["id"]]] = _image_file(Path(jp), im["file_name"])
            dataset[new_id[im["id"]]] = Path(jp).parent.name
        for a in d.get("annotations", []):
            if a["image_id"] in new_id and a.get("category_id", 1) == 1:
                a = {k: v for k, v in a.items() if k != "segmentation"}
                labelled = np.asarray(a.get("keypoints", []), np.float64).reshape(-1, 3)[:, 2] > 0
                a.setdefault("num_keypoints", int(labelled.sum()))
                annotations.append(a | {"id": len(annotations) + 1, "image_id": new_id[a["image_id"]]})
    if not images:
        raise PoseliveError("no images to evaluate on in " + ", ".join(str(p) for p in json_paths))
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    people = {i: [] for i in paths}
    for a in annotations:
        if a["num_keypoints"] > 0 and not a.get("iscrowd", 0):
            people[a["image_id"]].append(a)
    return EvalSet(coco, paths, dataset, people)
