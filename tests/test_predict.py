"""`poselive predict` finds the annotated person in a real photo with the shipped weights, writes COCO results
that pycocotools loads (an image_id on every result), takes boxes from a json, and skips what it cannot read.
Tests of the plumbing run untrained torch weights (skipped where torch is not installed)."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from poselive.body_metrics import pck
from poselive.cli import main
from poselive.weights import DEFAULT_DETECTOR, models_dir


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_CACHE", str(tmp_path / "cache"))  # ONNX exports of test weights


def shipped(name: str):
    path = models_dir() / f"{name}.pt"
    if not path.exists():
        pytest.skip(f"shipped weights {path} are not there yet (ship them, or set POSELIVE_MODELS)")
    return path


@pytest.fixture(scope="module")
def fashion_photo(shared_data):
    """(image path, GT keypoints (17, 3), GT box xywh) of the first fashion_a validation image."""
    ann = shared_data / "body" / "fashion_a" / "person_keypoints.json"
    if not ann.exists():
        pytest.skip(f"fashion_a not found at {ann.parent}")
    d = json.loads(ann.read_text())
    im = next(i for i in d["images"] if i["id"] % 7 == 0)  # validation (coco_data.split_of)
    a = next(a for a in d["annotations"] if a["image_id"] == im["id"])
    return ann.parent / "images" / im["file_name"], np.array(a["keypoints"]).reshape(17, 3), a["bbox"]


def untrained_weights(path: Path, config: str) -> Path:
    """An untrained checkpoint of a named config at `path`: enough to test the command's plumbing."""
    torch = pytest.importorskip("torch", reason="torch is not installed (untrained test weights are made with it)")
    from poselive.checkpoint import save_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    torch.manual_seed(0)
    save_checkpoint(path, StackedHourglass(config_by_name(config)))
    return path


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """An untrained body-lite checkpoint: enough to test the command's plumbing without shipped weights."""
    return untrained_weights(tmp_path_factory.mktemp("weights") / "random-body-lite.pt", "body-lite")


def pck_of(result: dict, gt: np.ndarray, box) -> float:
    pred = np.array(result["keypoints"]).reshape(1, 17, 3)
    return pck(pred, gt[None], np.array([box], float))[0]


@pytest.mark.parametrize("model", ["body-lite", "body-lite-160"])
def test_predict_finds_the_annotated_person_with_the_shipped_weights(fashion_photo, tmp_path, model):
    shipped(model)
    shipped(DEFAULT_DETECTOR)
    image, gt, box = fashion_photo
    out = tmp_path / "results.json"
    assert main(["predict", str(image), "--model", model, "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results, "the detector found no one in a photo of one standing person"
    best = max(results, key=lambda r: r["score"])
    assert best["file_name"] == image.name and best["category_id"] == 1
    assert pck_of(best, gt, box) >= 0.8


@pytest.mark.slow
def test_detected_people_below_the_score_gate_are_left_out_but_given_boxes_are_kept(fashion_photo):
    """PoseEstimator returns detected people whose joints average min_person_score or more: the real person
    passes, random noise (where the detector still fires) mostly does not; with boxes given, every box gets
    its person whatever the score."""
    import cv2

    from poselive import PoseEstimator
    shipped("body-lite")
    shipped(DEFAULT_DETECTOR)
    image, gt, box = fashion_photo
    est = PoseEstimator("body-lite", device="onnx")
    photo = cv2.imread(str(image))
    assert any(p.score >= 0.4 for p in est(photo))
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(5)]
    # The shipped detector hardly fires on noise at its own threshold; at 0.02 it does, and the gate is tested.
    gated = PoseEstimator("body-lite", device="onnx", det_threshold=0.02)
    loose = PoseEstimator("body-lite", device="onnx", det_threshold=0.02, min_person_score=0.0)
    found, found_loose = sum(len(gated(n)) for n in noise), sum(len(loose(n)) for n in noise)
    assert found_loose >= 5 and found <= 0.2 * found_loose, (found, found_loose)
    boxes = [[0, 0, 100, 200], [200, 100, 120, 240]]
    assert [p.bbox for p in est(noise[0], boxes=boxes)] == [tuple(map(float, b)) for b in boxes]


def test_predict_with_given_boxes_uses_them(fashion_photo, tmp_path):
    shipped("body-lite")
    image, gt, box = fashion_photo
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({image.name: [box]}))
    out = tmp_path / "results.json"
    assert main(["predict", str(image), "--boxes", str(boxes), "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["bbox"] == pytest.approx(box, abs=0.01)
    assert pck_of(result, gt, box) >= 0.8


def test_unreadable_and_missing_images_are_skipped_and_logged(fashion_photo, random_weights, tmp_path, caplog,
                                                              capsys):
    image, _, box = fashion_photo
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({image.name: [box, [0, 0, 50, 80]]}))
    out = tmp_path / "results.json"
    with caplog.at_level(logging.WARNING, logger="poselive.predict"):
        assert main(["predict", str(broken), str(image), "--boxes", str(boxes),
                     "--out", str(out), "--model", str(random_weights), "--device", "cpu"]) == 0
    assert f"skipping {broken}: not a readable image" in caplog.text
    assert "2 people in 1 of 1 images read, 1 skipped" in capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [r["bbox"] for r in results] == [pytest.approx(box, abs=0.01), [0, 0, 50, 80]]
    assert all(len(r["keypoints"]) == 51 and r["image_id"] == 2 and r["file_name"] == image.name
               for r in results)
    # A photo that is not there at all stops the command before any model loads, naming it (paths.check_paths).
    assert main(["predict", str(tmp_path / "gone.jpg"), str(image), "--out", str(out), "--model",
                 str(random_weights), "--device", "cpu"]) == 2


def test_every_result_has_an_image_id_and_pycocotools_loads_them(fashion_photo, tmp_path):
    """Photos named by words, not numbers, get ids numbered on from the numeric names beside them; the
    results load into pycocotools beside ground truth that names the same images."""
    import cv2
    from pycocotools.coco import COCO
    shipped("body-lite")
    image, gt, box = fashion_photo
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["walker.jpg", "000000000041.jpg", "dancer.jpg"]
    for name in names:  # copies: one file named three ways would be read once
        (folder / name).write_bytes(image.read_bytes())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({name: [box] for name in names}))
    out = tmp_path / "results.json"
    assert main(["predict", *(str(folder / n) for n in names), "--boxes", str(boxes), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [(r["file_name"], r["image_id"]) for r in results] == [("walker.jpg", 42), ("000000000041.jpg", 41),
                                                                 ("dancer.jpg", 43)]
    h, w = cv2.imread(str(image)).shape[:2]
    truth = COCO()
    truth.dataset = {"images": [{"id": r["image_id"], "file_name": r["file_name"], "width": w, "height": h}
                                for r in results],
                     "annotations": [{"id": i + 1, "image_id": r["image_id"], "category_id": 1, "bbox": box,
                                      "area": box[2] * box[3], "iscrowd": 0, "num_keypoints": 17,
                                      "keypoints": gt.ravel().tolist()} for i, r in enumerate(results)],
                     "categories": [{"id": 1, "name": "person"}]}
    truth.createIndex()
    loaded = truth.loadRes(str(out))
    assert sorted(loaded.getImgIds()) == [41, 42, 43] and len(loaded.getAnnIds()) == 3


def test_coco_boxes_file_gives_image_ids(fashion_photo, random_weights, tmp_path):
    image, gt, box = fashion_photo
    coco = {"images": [{"id": 4242, "file_name": image.name}],
            "annotations": [{"id": 1, "image_id": 4242, "bbox": box, "keypoints": gt.ravel().tolist()}]}
    boxes = tmp_path / "gt.json"
    boxes.write_text(json.dumps(coco))
    out = tmp_path / "results.json"
    assert main(["predict", str(image), "--boxes", str(boxes), "--out", str(out),
                 "--model", str(random_weights), "--device", "cpu"]) == 0
    (result,) = json.loads(out.read_text())
    assert result["image_id"] == 4242


def test_nothing_readable_is_an_error(random_weights, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert main(["predict", str(broken), "--out", str(tmp_path / "r.json"),
                 "--model", str(random_weights), "--device", "cpu"]) == 2
    assert "none of the 1 images could be read" in capsys.readouterr().err


def test_face_predict_writes_68_landmarks_per_given_box(shared_data, tmp_path):
    photo = next(iter(sorted((shared_data / "face" / "300w" / "afw").glob("*.jpg"))), None)
    if photo is None:
        pytest.skip(f"300-W AFW faces not found under {shared_data}/face")
    weights = untrained_weights(tmp_path / "face.pt", "face-lite")  # untrained: plumbing only
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({photo.name: [[20, 30, 80, 80]]}))
    out = tmp_path / "faces.json"
    assert main(["predict", str(photo), "--task", "face", "--boxes", str(boxes), "--out", str(out),
                 "--model", str(weights), "--device", "cpu"]) == 0
    (face,) = json.loads(out.read_text())
    # One shape for face landmarks everywhere (JSONL, stream, predict): 68 x [x, y, score].
    assert len(face["landmarks"]) == 68 and all(len(p) == 3 for p in face["landmarks"])
    assert face["file_name"] == photo.name and face["image_id"] == 1


@pytest.mark.slow
def test_face_predict_with_the_shipped_weights_lands_on_the_annotated_landmarks(shared_data, tmp_path):
    """Six validation faces (never trained on), boxes from their annotated landmarks as the eval uses: their
    mean NME (inter-ocular, 300-W) is under the 0.08 failure line and most faces are under it on their own
    (the model fails on about 1 face in 7, as dlib does); head poses agree with the pose fitted to the
    annotated landmarks."""
    import cv2
    from poselive.face_metrics import nme
    from poselive.headpose import fit_head_pose
    pytest.importorskip("torch", reason="torch is not installed (the face records are training code)")
    from poselive.train.face_data import face_records, split_of_face
    weights = shipped("face-lite")
    faces = [r for r in face_records(shared_data) if split_of_face(r) == "val" and r.dataset == "afw"][:6]
    if not faces:
        pytest.skip(f"no AFW validation faces under {shared_data}/face")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({Path(r.image_path).name: [list(r.box_xywh)] for r in faces}))
    out = tmp_path / "faces.json"
    assert main(["predict", *[r.image_path for r in faces], "--task", "face", "--boxes", str(boxes),
                 "--out", str(out), "--model", str(weights)]) == 0
    results = {r["file_name"]: r for r in json.loads(out.read_text())}
    nmes, pose_err = [], []
    for r in faces:
        got = results[Path(r.image_path).name]
        nmes.append(float(nme(np.array(got["landmarks"]).reshape(68, 3), r.keypoints)))
        h, w = cv2.imread(r.image_path).shape[:2]
        truth = fit_head_pose(r.keypoints, (w, h))[0]
        pose_err.append(max(abs(got["head_pose"][k] - getattr(truth, k)) for k in ("yaw", "pitch", "roll")))
    assert np.mean(nmes) < 0.08 and sum(n < 0.08 for n in nmes) >= 4, nmes
    assert np.median(pose_err) < 10, pose_err


def test_a_misplaced_detector_box_is_refined_from_the_joints_found_in_it(fashion_photo):
    """`PoseEstimator.find` looks once more in the box the first pass's joints span: from a detector box
    shifted by a third of its width and cut to 60% of the height, the refined person covers the annotated
    joints better than the first pass did, and at PCK@0.2 >= 0.8."""
    import cv2

    from poselive import PoseEstimator
    shipped("body-lite")
    image, gt, box = fashion_photo
    photo = cv2.imread(str(image))
    x, y, w, h = box
    bad = np.array([[x + w / 3, y, w, 0.6 * h]])
    boxes = np.array([box], float)
    once = PoseEstimator("body-lite", device="onnx", refine=False, min_person_score=0.0).find(photo, bad)
    twice = PoseEstimator("body-lite", device="onnx", min_person_score=0.0).find(photo, bad)
    pck_once = pck(once[0].keypoints[None], gt[None], boxes)[0]
    pck_twice = pck(twice[0].keypoints[None], gt[None], boxes)[0]
    assert pck_twice >= 0.8 and pck_twice > pck_once, (pck_once, pck_twice)


def test_render_draws_the_skeleton_where_the_person_is(fashion_photo, tmp_path):
    """--render writes the photo, same size, with the skeleton drawn on the annotated person's joints and the
    rest of the photo left as it was."""
    import cv2
    shipped("body-lite")
    image, gt, box = fashion_photo
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({image.name: [box]}))
    assert main(["predict", str(image), "--boxes", str(boxes), "--out", str(tmp_path / "r.json"),
                 "--render", str(tmp_path / "drawn"), "--device", "onnx"]) == 0
    before, after = cv2.imread(str(image)), cv2.imread(str(tmp_path / "drawn" / f"{image.stem}.jpg"))
    assert after.shape == before.shape
    changed = np.abs(after.astype(int) - before.astype(int)).max(2) > 60
    x, y, w, h = (int(v) for v in box)
    r = max(4, h // 20)  # a twentieth of the person's height around each annotated joint
    joints = gt[gt[:, 2] > 0, :2].round().astype(int)
    near = [changed[max(jy - r, 0):jy + r + 1, max(jx - r, 0):jx + r + 1].any() for jx, jy in joints]
    assert np.mean(near) >= 0.8, f"skeleton drawn at {np.mean(near):.0%} of the annotated joints"
    outside = changed.copy()
    outside[max(y - 10, 0):y + h + 10, max(x - 10, 0):x + w + 10] = False
    assert outside.mean() < 0.001, "drawing spilled outside the person's box"


@pytest.mark.parametrize("swap", [True, False], ids=["left-right swapped", "not swapped"])
def test_flip_test_mirrors_back_with_left_and_right_swapped(shared_data, swap, monkeypatch):
    """The flip test averages each crop's heatmaps with its mirror image's, mirrored back with left and right
    joints swapped. On 20 fashion_a validation photos (GT boxes) it keeps PCK@0.2 at least where one pass
    has it; the same averaging without the swap (a person's left wrist heatmap then also peaks at the right
    wrist) must lose PCK and lower those joints' scores, or this test could not tell the two apart."""
    import cv2

    from poselive import PoseEstimator
    from poselive.schemas import COCO17
    shipped("body-lite")
    ann = shared_data / "body" / "fashion_a" / "person_keypoints.json"
    d = json.loads(ann.read_text())
    ims = [im for im in d["images"] if im["id"] % 7 == 0][:20]
    first = {a["image_id"]: a for a in reversed(d["annotations"])}
    if not swap:
        monkeypatch.setattr(type(COCO17), "flip_permutation", lambda self: np.arange(17))
    plain = PoseEstimator("body-lite", device="onnx", flip_test=False)
    flipped = PoseEstimator("body-lite", device="onnx")
    gts, boxes, one, two = [], [], [], []
    for im in ims:
        a = first[im["id"]]
        photo = cv2.imread(str(ann.parent / "images" / im["file_name"]))
        gts.append(np.array(a["keypoints"], float).reshape(17, 3))
        boxes.append(a["bbox"])
        one.append(plain(photo, boxes=[a["bbox"]])[0].keypoints)
        two.append(flipped(photo, boxes=[a["bbox"]])[0].keypoints)
    gts, boxes = np.array(gts), np.array(boxes, float)
    one, two = np.array(one), np.array(two)
    pck_one, pck_two = pck(one, gts, boxes)[0], pck(two, gts, boxes)[0]
    sides = [i for pair in COCO17.flip_pairs for i in pair]
    score_ratio = two[:, sides, 2].mean() / one[:, sides, 2].mean()
    if swap:
        assert pck_two >= pck_one - 0.01 and pck_two >= 0.85 and score_ratio >= 0.95, (pck_one, pck_two, score_ratio)
    else:  # measured: PCK 0.971 -> 0.932, side joints' scores x0.81
        assert pck_two < pck_one and score_ratio < 0.9, (pck_one, pck_two, score_ratio)


def _people_boxed(evalset, detectors: dict) -> dict[str, int]:
    """How many of an EvalSet's annotated people each detector boxes at IoU >= 0.5; every box must lie in its
    image."""
    import cv2

    from poselive.body_metrics import people_boxed
    found = dict.fromkeys(detectors, 0)
    for image_id, people in evalset.people.items():
        if not people:
            continue
        gt = np.array([a["bbox"] for a in people], float)
        image = cv2.imread(str(evalset.image_paths[image_id]))
        for name, det in detectors.items():
            boxes = det(image)
            assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, :2] + boxes[:, 2:4] <= image.shape[1::-1])
            found[name] += people_boxed(gt, boxes)
    return found


@pytest.mark.slow
def test_corner_tiles_box_more_of_the_small_people_in_crowded_coco_photos(shared_data):
    """coco_mini's everyday scenes: the detector with its four corner tiles boxes clearly more of the annotated
    people (IoU >= 0.5) than the whole frame alone (body-det, sixth session, both with the half-size pass: 0.674
    against 0.593; body-det-2, eighth session: 0.686 against 0.605), and every tile box lands inside the image it was
    found in."""
    from poselive.backends import make_backend
    from poselive.detector import PersonDetector
    from poselive.train.evaluate import load_eval_set
    ann = shared_data / "body" / "coco_mini" / "person_keypoints.json"
    if not ann.exists():
        pytest.skip(f"coco_mini not found at {ann.parent}")
    evalset = load_eval_set([ann])
    backend = make_backend(shipped("body-det-2"), "onnx")
    found = _people_boxed(evalset, {"whole": PersonDetector(backend, 256, 0.1),
                                    "tiles": PersonDetector(backend, 256, 0.1, tiles=True)})
    assert found["tiles"] >= found["whole"] + 0.05 * evalset.num_people, (found, evalset.num_people)


@pytest.mark.slow
def test_half_size_pass_boxes_the_people_too_large_for_the_main_pass(shared_data):
    """On our validation split (290 people) the second whole-frame pass at half the letterbox side boxes more
    of the people at IoU >= 0.5 than the 256 px pass alone (measured with body-det: 245 against 234), close-ups
    among them.
    The pass alone is asked for per call, as the live pipeline does (`PipelineConfig.det_half_pass`)."""
    from poselive.backends import make_backend
    from poselive.detector import PersonDetector
    from poselive.train.evaluate import load_eval_set
    if not (shared_data / "body" / "fashion_a").exists():
        pytest.skip(f"hand-labelled body sets not found under {shared_data}")
    evalset = load_eval_set(None, shared_data)
    backend = make_backend(shipped("body-det-2"), "onnx")
    detector = PersonDetector(backend, 256, 0.1)
    found = _people_boxed(evalset, {"one": lambda image: detector(image, half_pass=False), "two": detector})
    assert found["two"] >= found["one"] + 0.02 * evalset.num_people, (found, evalset.num_people)
