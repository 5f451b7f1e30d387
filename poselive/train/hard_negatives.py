"""Hard negatives for the keypoint network: the crops our own person detector proposes where nobody is.

Random crops of empty photos (poselive.train.negatives) rarely look like a person, so the network learned to
score them low while a traffic cone on a sign post, a lamp post or a coat on a chair still scored like a walker
(on vtest.avi such a crop, once a track had led to it, scored a median 0.59 against 0.74 for the walkers). The
crops that matter are the ones the pipeline actually cuts: where the detector fires. So we run the detector over
training photos and keep the boxes that lie clear of every labelled person: on the photos of nobody
(`negatives/scene15`, grey), and in the colour backgrounds of photos whose every person is boxed (the
hand-labelled sets and CityPersons street scenes: poles, signs, cars, windows). Training shows them with an
empty target (KeypointTask), cut as the pipeline cuts a detection.

Only training splits are mined (det_data.det_split_of), so the held-out empty photos stay an honest test.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from poselive.boxes import box_intersection
from poselive.train.coco_data import CropCache, PersonRecord, build_cache
from poselive.train.det_data import det_items, det_split_of

log = logging.getLogger(__name__)

# Sets whose every person has a box (so a box away from them all is nobody). The pseudo-labelled sets are left
# out: their teacher missed people.
MINED_SETS = ("scene15", "citypersons", "fashion_a", "fashion_b", "pelota")
MINE_THRESHOLD = 0.15    # below the lowest score that backs a live track (PipelineConfig.confirm_threshold 0.2)
PER_PHOTO = 5            # the most confident boxes of each photo
# A box counts as nobody when at most this share of it overlaps any labelled person (grown by 20% each side:
# CityPersons boxes are tight, and a detector box half on a person is a part of one, not a lamp post).
MAX_PERSON_OVERLAP = 0.1


def clear_of_people(boxes: np.ndarray, people: np.ndarray) -> np.ndarray:
    """(M,) bool: which boxes (M, 4+) overlap no person box (N, 4), grown 20% a side, by more than
    MAX_PERSON_OVERLAP of their own area."""
    if len(boxes) == 0 or len(people) == 0:
        return np.ones(len(boxes), bool)
    p = np.asarray(people, np.float64)[:, :4]
    grown = np.c_[p[:, :2] - 0.2 * p[:, 2:], p[:, 2:] * 1.4]
    b = np.asarray(boxes, np.float64)[:, :4]
    inter = box_intersection(b, grown).max(1)
    return inter <= MAX_PERSON_OVERLAP * b[:, 2] * b[:, 3]


def mine_records(detect, root: Path, split: str = "train") -> list[PersonRecord]:
    """Person records with no keypoints, one per detector box clear of every labelled person, on the `split`
    photos of MINED_SETS. detect: image -> (M, 5) boxes x, y, w, h, score (best first), e.g. a PersonDetector."""
    items = [it for it in det_items(root) if it.dataset in MINED_SETS and det_split_of(it) == split]
    out: list[PersonRecord] = []
    for it in items:
        image = cv2.imread(it.image_path, cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", it.image_path)
            continue
        found = detect(image, MINE_THRESHOLD)
        people = np.concatenate([it.boxes_xywh.reshape(-1, 4), it.ignore_xywh.reshape(-1, 4)])
        keep = found[clear_of_people(found, people)][:PER_PHOTO]
        for x, y, w, h, _ in keep:
            out.append(PersonRecord(it.image_path, it.image_id, (float(x), float(y), float(w), float(h)),
                                    np.zeros((17, 3), np.float32), 1.0, it.dataset))
    return out


def hard_negative_cache(detect, detector_file: Path, root: Path, split: str, cache_dir: Path | None
                        ) -> CropCache:
    """The mined crops of `split` as a CropCache (keypoints all unlabelled), cut once and kept in cache_dir,
    keyed by the detector's weights and the data folder."""
    weights = hashlib.sha1(Path(detector_file).read_bytes()).hexdigest()
    key = hashlib.sha1(json.dumps([weights, str(root), split, MINED_SETS, MINE_THRESHOLD, PER_PHOTO,
                                   MAX_PERSON_OVERLAP]).encode()).hexdigest()[:12]
    listing = cache_dir / f"hard-negatives-{split}-{key}.json" if cache_dir else None
    if listing is not None and listing.exists():
        recs = [PersonRecord(r[0], r[1], tuple(r[2]), np.zeros((17, 3), np.float32), 1.0, r[3])
                for r in json.loads(listing.read_text())]
    else:
        recs = mine_records(detect, root, split)
        if listing is not None:
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text(json.dumps([[r.image_path, r.image_id, list(r.box_xywh), r.dataset] for r in recs]))
    counts = {s: sum(r.dataset == s for r in recs) for s in MINED_SETS}
    log.info("hard negatives (%s): %d detector boxes clear of people (%s)", split, len(recs),
             ", ".join(f"{s} {n}" for s, n in counts.items()))
    return build_cache(recs, cache_dir / f"hard-negatives-{split}" if cache_dir else None)
