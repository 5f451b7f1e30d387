"""Training data and loop: the COCO reader, the fixed validation split, augmentation that keeps every label on
its body part (a flip swaps left and right), a short run that learns, and resuming from a checkpoint."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")

from poselive.schemas import COCO17  # noqa: E402
from poselive.train.augment import AugmentConfig, augment_person  # noqa: E402
from poselive.train.coco_data import build_cache, read_coco, split_of  # noqa: E402


@pytest.fixture(scope="module")
def fashion_b(shared_data):
    path = shared_data / "body" / "fashion_b" / "person_keypoints.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return read_coco(path)


def test_reader_gives_every_person_with_17_keypoints_inside_its_box(fashion_b):
    assert len(fashion_b) == 259
    for r in fashion_b:
        assert r.keypoints.shape == (17, 3) and Path(r.image_path).exists()
        lab = r.keypoints[r.keypoints[:, 2] > 0, :2]
        x, y, w, h = r.box_xywh
        # Boxes are grown to cover their labelled joints (a few annotations have tiny boxes).
        assert (lab[:, 0] >= x - 1e-3).all() and (lab[:, 0] <= x + w + 1e-3).all()
        assert (lab[:, 1] >= y - 1e-3).all() and (lab[:, 1] <= y + h + 1e-3).all()


def test_validation_split_is_by_image_and_never_in_training(shared_data):
    from poselive.train.coco_data import body_records
    recs = body_records(shared_data)
    val = {(r.dataset, r.image_id) for r in recs if split_of(r) == "val"}
    train = {(r.dataset, r.image_id) for r in recs if split_of(r) == "train"}
    assert val and train and not (val & train)
    assert {d for d, _ in val} == {"fashion_a", "fashion_b", "pelota", "coco_mini"}


NO_COLOUR_CHANGE = AugmentConfig(occlusion_prob=0.0, blur_prob=0.0, noise_prob=0.0, gray_prob=0.0,
                                 half_body_prob=0.0, edge_cut_prob=0.0)


def painted_person():
    """A grey image with a red disc on the left wrist and a blue disc on the right wrist (person's own sides)."""
    img = np.full((300, 200, 3), 128, np.uint8)
    kps = np.zeros((17, 3), np.float32)
    rng = np.random.default_rng(0)
    kps[:, :2] = rng.uniform([60, 40], [140, 260], (17, 2))
    kps[:, 2] = 2
    kps[COCO17.index("left_wrist"), :2] = (140, 150)
    kps[COCO17.index("right_wrist"), :2] = (60, 150)
    cv2.circle(img, (140, 150), 9, (0, 0, 255), -1)
    cv2.circle(img, (60, 150), 9, (255, 0, 0), -1)
    return img, kps


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_keeps_labels_on_their_body_part(flip):
    img, kps = painted_person()
    perm = COCO17.flip_permutation()
    cfg = AugmentConfig(**{**NO_COLOUR_CHANGE.__dict__, "flip_prob": 1.0 if flip else 0.0})
    rng = np.random.default_rng(1)
    lw, rw = COCO17.index("left_wrist"), COCO17.index("right_wrist")
    for _ in range(20):  # random scale, rotation and shift each time
        crop, k = augment_person(img, (50, 30, 100, 240), kps, (96, 128), perm, cfg, rng)
        for idx, colour in ((lw, 2), (rw, 0)):  # BGR channel that must dominate under the label
            x, y = np.round(k[idx, :2]).astype(int)
            if not (0 <= x < 96 and 0 <= y < 128):
                continue
            px = crop[y, x].astype(int)
            # Unflipped, the left-wrist label sits on the red disc; flipped, the mirror image's left wrist is the
            # original right wrist, the blue disc.
            want = colour if not flip else 2 - colour
            assert px[want] > px[2 - want] + 40, f"label {COCO17.keypoints[idx]} on pixel {px} (flip={flip})"


def test_a_frame_edge_cut_hides_the_body_beyond_it_and_unlabels_its_joints():
    """The frame-edge augmentation: beyond the cut the crop is the fill inference pads outside the image with,
    and exactly the joints there lose their labels; the rest of the crop and of the labels is untouched."""
    from poselive.transforms import MEAN_BGR_U8
    img, kps = painted_person()
    cfg = AugmentConfig(**{**NO_COLOUR_CHANGE.__dict__, "flip_prob": 0.0, "edge_cut_prob": 1.0})
    plain = AugmentConfig(**{**NO_COLOUR_CHANGE.__dict__, "flip_prob": 0.0, "edge_cut_prob": 0.0})
    perm = COCO17.flip_permutation()
    kps = kps.copy()
    kps[:, 1] = np.linspace(40, 260, len(kps))  # joints spread from head to feet
    kps[:, 0] = 100
    cut_any = 0
    for seed in range(30):
        crop, k = augment_person(img, (50, 30, 100, 240), kps, (96, 128), perm, cfg, np.random.default_rng(seed))
        ref, k_ref = augment_person(img, (50, 30, 100, 240), kps, (96, 128), perm, plain,
                                    np.random.default_rng(seed))
        assert np.allclose(k[:, :2], k_ref[:, :2])           # the geometry is the same draw
        changed = np.any(crop != ref, axis=2)
        filled = np.all(crop == MEAN_BGR_U8, axis=2)
        assert changed.sum() > 0 and np.all(filled[changed])  # what changed is fill, and only fill
        lost = (k_ref[:, 2] > 0) & (k[:, 2] == 0)
        assert np.all(k[k[:, 2] > 0, 2] == k_ref[k[:, 2] > 0, 2])
        for x, y in k_ref[lost, :2]:                          # each unlabelled joint lies in the filled part
            xi, yi = int(np.clip(round(x), 0, 95)), int(np.clip(round(y), 0, 127))
            assert filled[yi, xi], (x, y)
        cut_any += lost.any()
    assert cut_any >= 10


def test_half_body_crops_frame_the_upper_body_the_legs_or_a_close_up_of_head_and_shoulders():
    """Each half-body box holds the labelled joints of one part. The close-up (head and shoulders, reaching some
    way down the chest: a webcam's framing) leaves the hips and legs out."""
    from poselive.train.augment import LOWER_BODY, UPPER_BODY, half_body_box
    kps = np.zeros((17, 3), np.float32)
    kps[:, 2] = 2
    kps[:, 0] = np.linspace(80, 120, 17)
    kps[:, 1] = np.linspace(20, 300, 17)       # head at the top, ankles at the bottom, a standing person
    kinds = set()
    for seed in range(60):
        x, y, w, h = half_body_box(kps, np.random.default_rng(seed), UPPER_BODY, LOWER_BODY)
        inside = (kps[:, 0] >= x) & (kps[:, 0] <= x + w) & (kps[:, 1] >= y) & (kps[:, 1] <= y + h)
        if inside[list(LOWER_BODY)].all() and not inside[:5].any():
            kinds.add("legs")
        elif inside[list(UPPER_BODY)].all() and not inside[13:].any():
            kinds.add("upper body")
        elif inside[:7].all() and not inside[11:].any():
            kinds.add("head and shoulders")
        else:
            raise AssertionError(f"box {(x, y, w, h)} frames no body part: joints inside {np.flatnonzero(inside)}")
    assert kinds == {"legs", "upper body", "head and shoulders"}


@pytest.mark.slow
def test_a_short_training_run_lowers_the_loss(fashion_b):
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    from poselive.train.loop import KeypointTask
    torch.manual_seed(0)
    cache = build_cache(fashion_b[:8])
    cfg = config_by_name("body-lite")
    task = KeypointTask(cfg, cache, None)
    model = StackedHourglass(cfg)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    x, targets = task.batch(np.random.default_rng(0), 8)  # one fixed batch: the network must fit it
    losses = []
    for _ in range(40):
        loss = task.loss(model.forward_stacks(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), f"loss {losses[0]:.2f} -> {losses[-1]:.2f}"


@pytest.mark.slow
def test_training_resumes_from_its_checkpoint(fashion_b, tmp_path):
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.train.loop import KeypointTask, TrainConfig, train
    cache = build_cache(fashion_b[:6])
    task = KeypointTask(config_by_name("body-lite"), cache, cache)
    tc = TrainConfig(batch=2, val_every=3)
    first = train(task, tmp_path, max_steps=3, tc=tc, progress=False)
    assert first["step"] == 3 and (tmp_path / "best.pt").exists() and 0.0 <= first["val"] <= 1.0
    second = train(task, tmp_path, max_steps=2, tc=tc, progress=False)
    assert second["step"] == 5
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 5


@pytest.mark.slow
def test_an_interrupted_run_saves_where_it_was(fashion_b, tmp_path):
    """Ctrl-C (or `kill`, which train_command turns into the same) mid-run: the steps done are validated and
    saved, so the next chunk resumes from there rather than from the last periodic checkpoint."""
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.train.loop import KeypointTask, TrainConfig, train

    class InterruptedAtFourthBatch(KeypointTask):
        calls = 0

        def batch(self, rng, n):
            InterruptedAtFourthBatch.calls += 1
            if InterruptedAtFourthBatch.calls == 4:
                raise KeyboardInterrupt
            return super().batch(rng, n)

    cache = build_cache(fashion_b[:6])
    task = InterruptedAtFourthBatch(config_by_name("body-lite"), cache, cache)
    figures = train(task, tmp_path, max_steps=50, tc=TrainConfig(batch=2, val_every=100),
                    progress=False)
    assert figures["step"] == 3
    blob = read_checkpoint(tmp_path / "last.pt")
    assert blob["step"] == 3 and "optimizer" in blob
    assert (tmp_path / "best.pt").exists()  # the interrupted chunk's weights were validated


@pytest.mark.slow
def test_a_changed_validation_metric_restarts_the_best(fashion_b, tmp_path):
    """A run resumed under a task whose validation figure means something else (the detector went from F1 to
    AP) must not keep the old best as the yardstick: best.pt is rewritten from the first new validation."""
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.train.loop import KeypointTask, TrainConfig, train
    cache = build_cache(fashion_b[:6])
    tc = TrainConfig(batch=2, val_every=2)
    train(KeypointTask(config_by_name("body-lite"), cache, cache), tmp_path, max_steps=2, tc=tc,
          progress=False)
    blob = read_checkpoint(tmp_path / "last.pt")
    assert blob["metric_name"] == KeypointTask.metric_name
    blob["metric_name"], blob["best_metric"] = "an older figure", 2.0   # unbeatable under the old name
    torch.save(blob, tmp_path / "last.pt")
    (tmp_path / "best.pt").unlink()
    train(KeypointTask(config_by_name("body-lite"), cache, cache), tmp_path, max_steps=2, tc=tc,
          progress=False)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["step"] == 4 and best["metric_name"] == KeypointTask.metric_name


@pytest.mark.slow
def test_a_state_saved_at_another_input_size_trains_on_at_the_configs_size(fashion_b, tmp_path):
    """body-lite-160 began as body-lite's 128x96 training state: resuming the older state must build the network
    at the task's size (crops and targets are made at that size), keep the weights, and judge best afresh."""
    from dataclasses import replace
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.train.loop import KeypointTask, TrainConfig, train
    cache = build_cache(fashion_b[:6])
    tc = TrainConfig(batch=2, val_every=2)
    small = replace(config_by_name("body-lite"), name="body-lite-64", input_wh=(48, 64))   # the older state
    train(KeypointTask(small, cache, cache), tmp_path, max_steps=2, tc=tc, progress=False)
    blob = read_checkpoint(tmp_path / "last.pt")
    assert tuple(blob["config"]["input_wh"]) == (48, 64)
    blob["best_metric"] = 2.0                                          # unbeatable at the old size
    torch.save(blob, tmp_path / "last.pt")
    (tmp_path / "best.pt").unlink()
    big = config_by_name("body-lite")
    train(KeypointTask(big, cache, cache), tmp_path, max_steps=2, tc=tc, progress=False)
    resumed = read_checkpoint(tmp_path / "last.pt")
    assert tuple(resumed["config"]["input_wh"]) == big.input_wh and resumed["step"] == 4
    assert resumed["config"]["name"] == big.name
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["step"] == 4 and tuple(best["config"]["input_wh"]) == big.input_wh


def test_a_network_grown_by_a_stack_says_what_the_trained_one_said():
    """`--start-from`: body-det-2 begins as body-det with a copy of its stack and zeroed remaps, so its output at
    step 0 is the trained detector's, to the bit; and it trains (the new layers get gradients)."""
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    from poselive.train.warm_start import grow_stacks
    torch.manual_seed(0)
    trained_cfg, target_cfg = config_by_name("body-det"), config_by_name("body-det-2")
    trained = StackedHourglass(trained_cfg)
    for m in trained.modules():   # non-trivial batch-norm statistics, as a trained network has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    trained.eval()
    grown = grow_stacks(trained.state_dict(), trained_cfg, target_cfg).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        want = trained(x)
        outs = grown.forward_stacks(x)
    assert len(outs) == 2
    assert torch.equal(outs[0], want) and torch.equal(outs[1], want)
    grown.train()
    grown.forward_stacks(x)[-1].pow(2).mean().backward()
    assert grown.remap_heatmaps[0].weight.grad.abs().sum() > 0
    assert grown.hourglasses[1].skip[0].body[0][0].weight.grad.abs().sum() > 0


def test_a_network_cannot_grow_into_one_of_other_layers():
    from dataclasses import replace
    from poselive.errors import PoseliveError
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    from poselive.train.warm_start import grow_stacks
    det, det2 = config_by_name("body-det"), config_by_name("body-det-2")
    state = StackedHourglass(det).state_dict()
    with pytest.raises(PoseliveError, match="layers differ"):
        grow_stacks(state, det, replace(det2, width=32))
    with pytest.raises(PoseliveError, match="fewer stacks"):
        grow_stacks(StackedHourglass(det2).state_dict(), det2, det)


@pytest.mark.slow
def test_a_new_run_can_start_from_trained_weights_and_then_resumes_its_own(fashion_b, tmp_path):
    from dataclasses import replace
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    from poselive.train.loop import KeypointTask, TrainConfig, train
    from poselive.train.warm_start import grow_stacks
    cache = build_cache(fashion_b[:6])
    lite = config_by_name("body-lite")
    deeper = replace(lite, name="body-lite-3", stacks=3)
    trained = StackedHourglass(lite)
    start = grow_stacks(trained.state_dict(), lite, deeper)
    tc = TrainConfig(batch=2, val_every=100)
    train(KeypointTask(deeper, cache, cache), tmp_path, max_steps=1, tc=tc, progress=False, start_from=start)
    blob = read_checkpoint(tmp_path / "last.pt")
    assert blob["step"] == 1 and blob["config"]["stacks"] == 3
    # Its first stack is the trained one's, moved by one small step only.
    moved = (blob["state_dict"]["hourglasses.0.skip.0.body.0.0.weight"]
             - trained.state_dict()["hourglasses.0.skip.0.body.0.0.weight"]).abs().max()
    assert 0 < moved < 0.01
    # A later chunk resumes its own state; the trained weights it began from are not read again.
    train(KeypointTask(deeper, cache, cache), tmp_path, max_steps=1, tc=tc, progress=False,
          start_from=StackedHourglass(lite))
    assert read_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_start_from_reads_a_checkpoint_file_and_names_a_missing_one(tmp_path):
    from poselive.checkpoint import save_checkpoint
    from poselive.errors import WeightsError
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    from poselive.train.run import grown_from
    save_checkpoint(tmp_path / "det.pt", StackedHourglass(config_by_name("body-det")), {"step": 7})
    grown = grown_from(str(tmp_path / "det.pt"), config_by_name("body-det-2"))
    assert grown.cfg == config_by_name("body-det-2") and len(grown.hourglasses) == 2
    with pytest.raises(WeightsError, match="nope.pt"):
        grown_from(str(tmp_path / "nope.pt"), config_by_name("body-det-2"))
