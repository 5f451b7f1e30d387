"""MOT scoring (poselive.mot_metrics) on cases small enough to count by hand, and a JSONL round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from poselive.mot_metrics import FrameBoxes, read_jsonl_people, read_mot_gt, score_tracks

pytest.importorskip("motmetrics")


def write_gt(path, rows):
    path.write_text("\n".join(",".join(str(v) for v in r) + ",-1,-1,-1" for r in rows) + "\n")
    return path


def hyp(*people):
    return FrameBoxes(np.array([p[0] for p in people], int), np.array([p[1:] for p in people], float).reshape(-1, 4))


def test_a_perfect_track_a_phantom_an_id_switch_and_an_ignored_person(tmp_path):
    # Two people over 4 frames (MOT frames 1-4 = video frames 0-3); a third, mostly hidden (conf 0) in frame 1.
    rows = [(f, 1, 10 + f, 10, 20, 50, 1) for f in range(1, 5)] + [(f, 2, 100, 10, 20, 50, 1) for f in range(1, 5)]
    rows.append((1, 3, 200, 10, 20, 50, 0))
    gt, ignored = read_mot_gt(write_gt(tmp_path / "gt.txt", rows))
    assert sorted(gt) == [0, 1, 2, 3] and len(ignored[0]) == 1 and len(ignored[1]) == 0
    pred = {f: hyp((7, 10 + f + 1, 10, 20, 50),                    # person 1, tracked all along
                   (8 if f < 2 else 9, 100, 10, 20, 50),          # person 2: a new id from frame 2 on
                   (5, 400, 300, 20, 50)) for f in range(4)}      # a phantom in every frame
    pred[0] = hyp(*[(int(i), *b) for i, b in zip(pred[0].ids, pred[0].boxes)], (6, 201, 10, 20, 50))  # on the hidden one
    s = score_tracks(gt, ignored, pred)
    assert (s.gt_boxes, s.people, s.frames) == (8, 2, 4)
    assert s.false_positives == 4          # the phantom, 4 times; the prediction on the hidden person not at all
    assert s.misses == 0 and s.id_switches == 1
    assert s.mota == pytest.approx(1 - (4 + 1) / 8)
    assert s.precision == pytest.approx(8 / 12) and s.recall == 1.0
    assert s.mostly_tracked == 2 and s.track_ids == 4   # 7, 8, 9 and the phantom; 6 was dropped


def test_a_box_under_iou_half_is_a_miss_and_a_false_person(tmp_path):
    gt, ignored = read_mot_gt(write_gt(tmp_path / "gt.txt", [(1, 1, 0, 0, 20, 40, 1)]))
    s = score_tracks(gt, ignored, {0: hyp((1, 10, 0, 20, 40))})   # IoU 1/3
    assert (s.misses, s.false_positives, s.recall) == (1, 1, 0.0)
    s = score_tracks(gt, ignored, {})                               # a frame nobody was found in
    assert (s.misses, s.false_positives) == (1, 0)


def test_jsonl_people_keep_their_ids_and_boxes_and_untracked_ones_are_left_out(tmp_path):
    lines = [{"frame": 0, "time": 0.0, "people": [{"track_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9, "keypoints": []},
                                                   {"track_id": -1, "bbox": [5, 6, 7, 8], "score": 0.2, "keypoints": []}]},
             {"frame": 1, "time": 0.1, "people": []}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    got = read_jsonl_people(path)
    assert got[0].ids.tolist() == [3] and got[0].boxes.tolist() == [[1, 2, 3, 4]] and len(got[1].ids) == 0


def test_unreadable_ground_truth_is_one_line(tmp_path):
    from poselive.errors import PoseliveError
    bad = tmp_path / "gt.txt"
    bad.write_text("frame,id\n1,2\n")
    with pytest.raises(PoseliveError, match="MOT ground truth"):
        read_mot_gt(bad)
