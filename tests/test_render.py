"""Drawing: limbs land where the keypoints are, low-score keypoints are left out, heatmaps are warped back to
the right place, head-pose axes start at the projected origin, the HUD shows up; and a real frame rendered to
/tmp/render_check.png for a person to look at."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from poselive.records import Face, Person, StageTimes
from poselive.headpose import camera_matrix, fit_head_pose, project_model, rotation_from_angles
from poselive.render import (draw_faces, draw_head_pose, draw_heatmaps, draw_hud, draw_people,
                             limb_colours, line_thickness, track_colour)
from poselive.schemas import COCO17, FACE68
from poselive.sources import open_source
from poselive.train.coco_data import data_root
from poselive.transforms import box_to_crop, crop_matrix

POSE = np.array([
    (0, -0.42), (0.03, -0.445), (-0.03, -0.445), (0.06, -0.43), (-0.06, -0.43),
    (0.12, -0.3), (-0.12, -0.3), (0.16, -0.12), (-0.16, -0.12), (0.18, 0.04), (-0.18, 0.04),
    (0.08, 0.02), (-0.08, 0.02), (0.09, 0.26), (-0.09, 0.26), (0.1, 0.5), (-0.1, 0.5),
])


def person_at(x, y, height, score=0.9, track_id=-1) -> Person:
    xy = np.c_[x + POSE[:, 0] * height, y + POSE[:, 1] * height]
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    kp = np.c_[xy, np.full(17, score)].astype(np.float32)
    return Person(kp, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score, track_id)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(-1) > 0


def test_limbs_are_drawn_along_the_skeleton_and_weak_keypoints_are_not():
    blank = np.zeros((480, 640, 3), np.uint8)
    p = person_at(320, 240, 360)
    kp = p.keypoints.copy()
    kp[10, 2] = 0.1            # right wrist unsure: the right forearm (8-10) must not be drawn
    p = Person(kp, p.bbox, p.score, 2)
    image = draw_people(blank.copy(), [p], min_score=0.3)
    diff = changed(image, blank)
    for a, b in COCO17.skeleton:
        mid = ((kp[a, :2] + kp[b, :2]) / 2).round().astype(int)
        if 10 in (a, b):
            assert not diff[mid[1], mid[0]], (a, b)
        else:
            assert diff[mid[1], mid[0]], (a, b)
    wrist = kp[10, :2].round().astype(int)
    assert not diff[wrist[1] - 3: wrist[1] + 4, wrist[0] - 3: wrist[0] + 4].any()
    # Far from the person nothing changes (the id label sits just above the head).
    assert not diff[:, :150].any() and not diff[:, 500:].any() and not diff[440:].any()
    # Side colours: the subject's left leg (image right) in blues, right leg in oranges.
    left = image[int((kp[13, 1] + kp[15, 1]) / 2), int(round((kp[13, 0] + kp[15, 0]) / 2))].astype(int)
    right = image[int((kp[14, 1] + kp[16, 1]) / 2), int(round((kp[14, 0] + kp[16, 0]) / 2))].astype(int)
    assert left[0] > left[2] + 60 and right[2] > right[0] + 60


def test_track_id_label_is_drawn_in_the_track_colour():
    blank = np.zeros((480, 640, 3), np.uint8)
    image = draw_people(blank.copy(), [person_at(320, 260, 300, track_id=5)])
    colour = np.array(track_colour(5))
    above_head = image[:int(260 - 0.445 * 300)]
    assert (np.abs(above_head.astype(int) - colour).sum(-1) == 0).sum() > 50
    untracked = draw_people(blank.copy(), [person_at(320, 260, 300)])
    assert not changed(untracked[:int(260 - 0.445 * 300) - 6], blank[:int(260 - 0.445 * 300) - 6]).any()


def test_limb_colour_families():
    colours = limb_colours(COCO17)
    assert len(colours) == len(COCO17.skeleton)
    assert len(set(colours)) == len(colours)     # every limb its own shade
    assert len(limb_colours(FACE68)) == len(FACE68.skeleton)


def test_thickness_grows_with_the_image():
    assert line_thickness(np.zeros((480, 640, 3), np.uint8)) == 2
    assert line_thickness(np.zeros((1080, 1920, 3), np.uint8)) == 4


def test_heatmap_peak_is_warped_back_to_its_image_position():
    h, w = 480, 640
    blank = np.full((h, w, 3), 40, np.uint8)
    target = np.array([400.0, 150.0])            # image px where the heatmap peaks
    crop = box_to_crop((300, 60, 200, 300), (192, 256))
    m_input = crop_matrix(crop, (192, 256))
    stride = 4                                   # heatmap px = (input px + 0.5) / stride - 0.5
    m_heat = m_input / stride
    m_heat[:, 2] += 0.5 / stride - 0.5
    peak = m_heat[:, :2] @ target + m_heat[:, 2]
    yy, xx = np.mgrid[:64, :48]
    heatmaps = np.zeros((17, 64, 48), np.float32)
    heatmaps[3] = np.exp(-((xx - peak[0]) ** 2 + (yy - peak[1]) ** 2) / (2 * 1.5 ** 2))
    image = draw_heatmaps(blank.copy(), heatmaps, m_heat, alpha=0.7)
    change = np.abs(image.astype(int) - blank).sum(-1)
    # The heat is a round blob around the target (the crop scales x and y alike), so the changed pixels are
    # centred on it.
    ys, xs = np.nonzero(change)
    weight = change[ys, xs]
    assert abs(np.average(xs, weights=weight) - target[0]) < 0.5
    assert abs(np.average(ys, weights=weight) - target[1]) < 0.5
    assert change[:, :250].max() == 0 and change[300:].max() == 0
    # The list form (one pair per person) gives the same picture for one person.
    listed = draw_heatmaps(blank.copy(), [(heatmaps, m_heat)], alpha=0.7)
    assert np.array_equal(listed, image)


def test_head_pose_axes_start_at_the_projected_origin():
    blank = np.zeros((480, 640, 3), np.uint8)
    k = camera_matrix((640, 480))
    assert k[0, 0] == 640 and k[0, 2] == pytest.approx(319.5) and k[1, 2] == pytest.approx(239.5)
    image = draw_head_pose(blank.copy(), np.zeros(3), np.array([0.0, 0.0, 600.0]), face_width_px=120)
    # No rotation: x axis to the right (red), y axis down (green), facing axis at the camera (a dot).
    red = (image[..., 2] > 150) & (image[..., 1] < 80) & (image[..., 0] < 80)
    green = (image[..., 1] > 150) & (image[..., 2] < 80) & (image[..., 0] < 80)
    ys, xs = np.nonzero(red)
    assert abs(xs.min() - 320) <= 4 and abs(xs.max() - 380) <= 3 and abs(np.median(ys) - 240) <= 1
    ys, xs = np.nonzero(green)
    assert abs(ys.min() - 240) <= 4 and abs(ys.max() - 300) <= 3 and abs(np.median(xs) - 320) <= 1
    behind = draw_head_pose(blank.copy(), np.zeros(3), np.array([0.0, 0.0, -600.0]))
    assert not behind.any()


def test_faces_draw_contours_and_axes_from_a_head_pose_fit():
    """The mean face turned to its left, projected, fitted back by poselive.headpose and drawn: the axes start
    at the nose tip and the facing axis (blue) points to the image's right."""
    h, w = 480, 640
    k = camera_matrix((w, h))
    rvec, _ = cv2.Rodrigues(rotation_from_angles(30.0, 0.0, 0.0))
    tvec = np.array([[0.0], [0.0], [600.0]])
    xy = project_model(rvec, tvec, (w, h))
    fit = fit_head_pose(xy, (w, h))
    assert fit is not None
    pose, fit_rvec, fit_tvec = fit
    assert pose.yaw == pytest.approx(30.0, abs=1.0)
    lm = np.c_[xy, np.full(68, 0.9)].astype(np.float32)
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    face = Face(lm, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), 0.9, pose, fit_rvec, fit_tvec)
    blank = np.zeros((h, w, 3), np.uint8)
    image = draw_faces(blank.copy(), [face], show_angles=False)
    diff = changed(image, blank)
    for a, b in FACE68.skeleton:
        mid = ((lm[a, :2] + lm[b, :2]) / 2).round().astype(int)
        assert diff[mid[1] - 1: mid[1] + 2, mid[0] - 1: mid[0] + 2].any(), (a, b)
    blue = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
    ys, xs = np.nonzero(blue)
    nose = xy[30]
    assert xs.max() > nose[0] + 15                        # facing to the image's right
    assert abs(xs.min() - nose[0]) <= 4 and abs(np.median(ys) - nose[1]) <= 4
    assert k[0, 0] == w


def test_hud_shows_numbers_and_status():
    frame = np.full((480, 640, 3), 200, np.uint8)
    image = draw_hud(frame.copy(), fps=24.5, times=StageTimes({"network": 30.0, "decode": 1.0}), dropped=3,
                     latency_ms=52.0, status="camera 0 lost, retrying in 2 s")
    diff = changed(image, frame)
    assert diff[:40, :100].any()
    assert not diff[300:, 400:].any()
    warning = (image[..., 2] > 200) & (image[..., 1] > 100) & (image[..., 1] < 180) & (image[..., 0] < 60)
    assert warning.sum() > 20


def test_the_timing_panel_is_small_and_half_transparent():
    """On a 640x360 frame (the close-up clip's size) the full panel, every pipeline stage timed, covers a
    corner of about 5% of the frame, and the frame shows through it at half its brightness."""
    frame = np.full((360, 640, 3), 200, np.uint8)
    times = StageTimes({"capture": 0.3, "detect": 12.1, "preprocess": 0.8, "network": 18.2, "decode": 0.9,
                        "track": 0.6, "smooth": 0.4, "face": 4.2, "render": 1.1})
    image = draw_hud(frame.copy(), fps=24.3, times=times, dropped=12, latency_ms=48)
    ys, xs = np.nonzero(changed(image, frame))
    assert xs.min() == 0 and ys.min() == 0, "the panel sits in the top-left corner"
    assert (xs.max() + 1) * (ys.max() + 1) < 0.06 * 360 * 640
    under = image[: ys.max() + 1, : xs.max() + 1]
    assert np.median(under) == 100


def test_render_a_real_frame_for_a_person_to_look_at():
    video = data_root() / "videos" / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"shared video {video} not found: set POSELIVE_DATA to the shared data folder")
    with open_source(video) as src:
        frame = next(f for f in src if f.index == 100)
    image = frame.image.copy()
    people = [person_at(250, 330, 260, track_id=3), person_at(520, 300, 200, track_id=7)]
    kp = people[1].keypoints.copy()
    kp[9, 2] = 0.1
    people[1] = Person(kp, people[1].bbox, 0.8, 7)
    m = crop_matrix(box_to_crop(people[0].bbox, (192, 256)), (192, 256)) / 4
    m[:, 2] += 0.5 / 4 - 0.5
    peaks = people[0].keypoints[:, :2] @ m[:, :2].T + m[:, 2]
    yy, xx = np.mgrid[:64, :48]
    heatmaps = np.exp(-((xx - peaks[:, :1, None]) ** 2 + (yy - peaks[:, 1:, None]) ** 2) / 8).astype(np.float32)
    draw_heatmaps(image, heatmaps, m)
    draw_people(image, people, show_boxes=True)
    draw_hud(image, fps=24.3, times=StageTimes({"capture": 1.2, "network": 31.5, "decode": 0.8}), dropped=12,
             latency_ms=48, status="camera 0 lost, retrying in 2 s")
    assert cv2.imwrite("/tmp/render_check.png", image)
    diff = changed(image, frame.image)
    for p in people:
        k = p.keypoints
        mid = ((k[5, :2] + k[7, :2]) / 2).round().astype(int)   # left upper arm
        assert diff[mid[1], mid[0]]
