"""Drawing only: skeletons with track ids, face landmarks with head-pose axes, heatmaps blended over the frame,
and a HUD of frame rate and per-stage times. Knows keypoint schemas and result records, never the network.

Every `draw_*` function draws in place on `image` ((H, W, 3) uint8 BGR, coordinates in its px with pixel
centres at integers, as everywhere in poselive) and returns it. Lines are antialiased and drawn at sub-pixel
precision; their thickness grows with the image size.
"""
from __future__ import annotations

import colorsys
import functools
from typing import Iterable, Sequence

import cv2
import numpy as np

from poselive.headpose import camera_matrix
from poselive.records import Face, Person, StageTimes
from poselive.schemas import COCO17, FACE68, KeypointSchema
from poselive.transforms import invert_matrix

_SHIFT = 4                 # cv2 fixed-point bits: coordinates are drawn to 1/16 px
_ONE = 1 << _SHIFT
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Colour families by body side (OpenCV hue 0-180): the subject's left in blues, right in oranges,
# centre (head, torso links, face midline) in greens.
_SIDE_HUES = {"left": (92, 118), "right": (4, 24), "centre": (38, 70)}
AXIS_COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))   # head axes x red, y green, facing blue (BGR)
WARNING_COLOUR = (0, 140, 255)


def line_thickness(image: np.ndarray) -> int:
    """Line width in px for this image size: 2 at 480-600 px, 4 at 1080 px."""
    return max(1, round(min(image.shape[:2]) / 250))


def _side(name: str) -> str:
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"


def _hsv_bgr(h: float, s: int = 220, v: int = 255) -> tuple[int, int, int]:
    px = cv2.cvtColor(np.array([[[round(h) % 180, s, v]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(px[0]), int(px[1]), int(px[2])


@functools.lru_cache(maxsize=16)
def limb_colours(schema: KeypointSchema) -> tuple[tuple[int, int, int], ...]:
    """One BGR colour per skeleton edge: an edge joining two left (right) keypoints is in the left (right)
    family, any other edge in the centre family; shades spread within a family so limbs stay apart."""
    sides = [{_side(schema.keypoints[a]), _side(schema.keypoints[b])} for a, b in schema.skeleton]
    sides = [s.pop() if len(s) == 1 else "centre" for s in sides]
    colours = []
    for i, side in enumerate(sides):
        members = [j for j, s in enumerate(sides) if s == side]
        lo, hi = _SIDE_HUES[side]
        k = members.index(i)
        colours.append(_hsv_bgr(lo + (hi - lo) * (k / max(len(members) - 1, 1))))
    return tuple(colours)


@functools.lru_cache(maxsize=16)
def keypoint_colours(schema: KeypointSchema) -> tuple[tuple[int, int, int], ...]:
    """One BGR colour per keypoint, the middle shade of its side's family."""
    return tuple(_hsv_bgr(sum(_SIDE_HUES[_side(n)]) / 2, 160) for n in schema.keypoints)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per track id (golden-ratio hue steps); grey for untracked (-1)."""
    if track_id < 0:
        return (180, 180, 180)
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _fixed(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]) * _ONE)), int(round(float(xy[1]) * _ONE))


def _label(image: np.ndarray, text: str, anchor_xy: tuple[float, float], colour, scale: float) -> None:
    """Text on a filled box whose bottom-left corner sits at anchor_xy, kept inside the image."""
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    h, w = image.shape[:2]
    x = int(min(max(anchor_xy[0], 0), max(w - tw - 4, 0)))
    y = int(min(max(anchor_xy[1], th + base + 4), h - 1))
    cv2.rectangle(image, (x, y - th - base - 4), (x + tw + 4, y), colour, -1)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - base - 2), _FONT, scale, ink, thick, cv2.LINE_AA)


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, schema: KeypointSchema = COCO17,
                  min_score: float = 0.3, thickness: int | None = None,
                  colours: Sequence[tuple[int, int, int]] | None = None, point_radius: int | None = None
                  ) -> np.ndarray:
    """Edges and points of one pose. keypoints: (K, 3) x, y image px and score; keypoints scored below
    `min_score` (or not finite) are not drawn, nor any edge touching them. colours: per edge (default
    limb_colours(schema))."""
    t = thickness or line_thickness(image)
    r = point_radius if point_radius is not None else t + 1
    kp = np.asarray(keypoints, np.float64)
    ok = (kp[:, 2] >= min_score) & np.isfinite(kp[:, :2]).all(1)
    colours = colours or limb_colours(schema)
    for (a, b), colour in zip(schema.skeleton, colours):
        if ok[a] and ok[b]:
            cv2.line(image, _fixed(kp[a]), _fixed(kp[b]), colour, t, cv2.LINE_AA, _SHIFT)
    if r > 0:
        for i, colour in enumerate(keypoint_colours(schema)):
            if ok[i]:
                cv2.circle(image, _fixed(kp[i]), r * _ONE, colour, -1, cv2.LINE_AA, _SHIFT)
                if r >= 3:  # a dark rim keeps points visible on a limb of the same colour
                    cv2.circle(image, _fixed(kp[i]), r * _ONE, (40, 40, 40), 1, cv2.LINE_AA, _SHIFT)
    return image


def draw_people(image: np.ndarray, people: Iterable[Person], schema: KeypointSchema = COCO17,
                min_score: float = 0.3, show_ids: bool = True, show_boxes: bool = False,
                thickness: int | None = None) -> np.ndarray:
    """Every person's skeleton (limb colours by side), and its track id ("#3", in the track's colour) above
    the head when tracked. show_boxes: also the person box in the track's colour."""
    t = thickness or line_thickness(image)
    colours = limb_colours(schema)
    for p in people:
        draw_skeleton(image, p.keypoints, schema, min_score, t, colours)
        x, y, w, h = (float(v) for v in p.bbox)
        if show_boxes and w > 0 and h > 0:
            cv2.rectangle(image, _fixed((x, y)), _fixed((x + w, y + h)), track_colour(p.track_id), max(1, t // 2),
                          cv2.LINE_AA, _SHIFT)
        if show_ids and p.track_id >= 0:
            kp = np.asarray(p.keypoints)
            good = kp[(kp[:, 2] >= min_score) & np.isfinite(kp[:, :2]).all(1), :2]
            if len(good):
                anchor = (float(good[:, 0].mean()) - 10 * t, float(good[:, 1].min()) - 4 * t)
            else:
                anchor = (x, y - 2)
            _label(image, f"#{p.track_id}", anchor, track_colour(p.track_id), 0.25 * t + 0.2)
    return image


def draw_head_pose(image: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, length: float | None = None,
                   face_width_px: float | None = None, thickness: int | None = None) -> np.ndarray:
    """Head axes from the model origin (the nose tip in poselive.headpose's mean face), projected with the same
    uncalibrated camera the fit used (headpose.camera_matrix: focal = width, centre = image centre, no
    distortion): red along the model's x (towards the subject's left), green along y (down the face), blue
    along -z (out of the face: where it points). rvec, tvec: solvePnP's model -> camera rotation (Rodrigues)
    and translation. length: axis length in model units (mm); by default chosen so the axes are half of
    face_width_px long on screen (or 1/8 of the image width)."""
    h, w = image.shape[:2]
    rvec = np.asarray(rvec, np.float64).reshape(3, 1)
    tvec = np.asarray(tvec, np.float64).reshape(3, 1)
    depth = float(tvec[2, 0])
    if not (np.isfinite(rvec).all() and np.isfinite(tvec).all()) or depth <= 0:
        return image  # behind the camera or a failed fit: nothing sensible to draw
    k = camera_matrix((w, h))
    if length is None:
        on_screen = 0.5 * face_width_px if face_width_px else w / 8
        length = on_screen * depth / k[0, 0]
    pts3 = np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, -length]], np.float64)
    pts2, _ = cv2.projectPoints(pts3, rvec, tvec, k, np.zeros(5))
    pts2 = pts2.reshape(-1, 2)
    if not np.isfinite(pts2).all() or np.abs(pts2).max() > 16 * max(h, w):
        return image
    t = thickness or line_thickness(image)
    for end, colour in zip(pts2[1:], AXIS_COLOURS):
        cv2.arrowedLine(image, _fixed(pts2[0]), _fixed(end), colour, t, cv2.LINE_AA, _SHIFT, 0.15)
    return image


def draw_faces(image: np.ndarray, faces: Iterable[Face], schema: KeypointSchema = FACE68,
               min_score: float = 0.3, show_axes: bool = True, show_angles: bool = True,
               show_ids: bool = False, thickness: int | None = None) -> np.ndarray:
    """Landmark contours (jaw, brows, nose, closed eye and lip contours; colours by side) and points, the
    head-pose axes when the face has rvec/tvec, and yaw/pitch/roll in degrees under the face box."""
    t = max(1, (thickness or line_thickness(image)) // 2)
    colours = limb_colours(schema)
    for f in faces:
        draw_skeleton(image, f.landmarks, schema, min_score, t, colours, point_radius=t)
        x, y, w, h = (float(v) for v in f.bbox)
        if show_axes and f.rvec is not None and f.tvec is not None:
            draw_head_pose(image, f.rvec, f.tvec, face_width_px=w if w > 0 else None, thickness=2 * t)
        scale = 0.3 + 0.15 * t
        if show_angles and f.head_pose is not None:
            hp = f.head_pose
            _label(image, f"yaw {hp.yaw:+.0f} pitch {hp.pitch:+.0f} roll {hp.roll:+.0f}",
                   (x, y + h + 20 * scale + 6), (50, 50, 50), scale)
        if show_ids and f.track_id >= 0:
            _label(image, f"#{f.track_id}", (x, y - 2), track_colour(f.track_id), scale)
    return image


def draw_heatmaps(image: np.ndarray, heatmaps, image_to_heatmap: np.ndarray | None = None,
                  alpha: float = 0.6, colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """Blend network heatmaps over the frame.

    heatmaps: (K, h, w) float heatmaps of one crop with `image_to_heatmap`, the 2x3 affine mapping image px to
    that crop's heatmap px; or a list of such (heatmaps, matrix) pairs, one per person. Each crop's max over K
    (clipped to [0, 1]) is warped back into the frame with the inverse affine; overlapping crops take the
    maximum; the result is colour-mapped and blended with weight alpha x heat, so cold areas keep the frame."""
    pairs = [(heatmaps, image_to_heatmap)] if image_to_heatmap is not None else list(heatmaps)
    h, w = image.shape[:2]
    # Work only inside the frame region the crops cover: a full-frame float blend costs tens of ms.
    warps = []
    x0, y0, x1, y1 = w, h, 0, 0
    for maps, m in pairs:
        maps = np.asarray(maps, np.float32)
        one = np.clip(maps.reshape(-1, *maps.shape[-2:]).max(0), 0.0, 1.0)
        back = invert_matrix(m)  # heatmap px -> image px
        hh, hw = one.shape
        corners = np.array([[-0.5, -0.5], [hw - 0.5, -0.5], [-0.5, hh - 0.5], [hw - 0.5, hh - 0.5]]) @ back[:, :2].T \
            + back[:, 2]
        x0, y0 = min(x0, int(np.floor(corners[:, 0].min()))), min(y0, int(np.floor(corners[:, 1].min())))
        x1, y1 = max(x1, int(np.ceil(corners[:, 0].max())) + 1), max(y1, int(np.ceil(corners[:, 1].max())) + 1)
        warps.append((one, back))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return image
    heat = np.zeros((y1 - y0, x1 - x0), np.float32)
    for one, back in warps:
        shifted = back.copy()
        shifted[:, 2] -= (x0, y0)
        warped = cv2.warpAffine(one, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.maximum(heat, warped, out=heat)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), colormap).astype(np.float32)
    weight = (alpha * heat)[..., None]
    roi = image[y0:y1, x0:x1]
    roi[:] = (roi.astype(np.float32) * (1 - weight) + colour * weight + 0.5).astype(np.uint8)
    return image


# Short stage names for the timing panel (the window's status bar uses the same words).
STAGE_ABBREV = {"detect": "det", "preprocess": "prep", "network": "net", "decode": "dec", "track": "trk",
                "smooth": "smooth", "render": "draw"}
HUD_STAGES_PER_LINE = 4


def draw_hud(image: np.ndarray, fps: float | None = None, times: StageTimes | None = None,
             dropped: int | None = None, latency_ms: float | None = None, status: str | None = None,
             extra: Sequence[str] = ()) -> np.ndarray:
    """A small half-transparent panel in the top-left corner: frames per second, latency (capture to now, ms)
    and dropped frames on one line; the per-stage ms (from StageTimes, in pipeline order, stages under
    0.5 ms left out) HUD_STAGES_PER_LINE to a line, with their total; extra lines; and `status` (e.g. "camera 0
    lost, retrying in 2 s") in warning colour. Small enough to leave the people in view: about 5% of a 640x360
    frame."""
    lines: list[tuple[str, tuple[int, int, int]]] = []
    head = []
    if fps is not None:
        head.append(f"{fps:.1f} FPS")
    if latency_ms is not None:
        head.append(f"latency {latency_ms:.0f} ms")
    if dropped is not None:
        head.append(f"{dropped} dropped")
    if head:
        lines.append(("  ".join(head), (255, 255, 255)))
    if times is not None and times.ms:
        shown = [f"{STAGE_ABBREV.get(name, name)} {ms:.1f}" for name, ms in times.ms.items() if ms >= 0.5]
        shown.append(f"= {times.total_ms:.1f} ms")
        for i in range(0, len(shown), HUD_STAGES_PER_LINE):
            lines.append(("  ".join(shown[i:i + HUD_STAGES_PER_LINE]), (220, 220, 220)))
    lines += [(text, (220, 220, 220)) for text in extra]
    if status:
        lines.append((status, WARNING_COLOUR))
    if not lines:
        return image
    h, w = image.shape[:2]
    scale = max(0.33, min(h, w) / 1500)
    thick = 1
    sizes = [cv2.getTextSize(text, _FONT, scale, thick) for text, _ in lines]
    step = max(th + base for (_, th), base in sizes) + 2
    pad = 4
    x1 = min(w, 2 * pad + max(tw for (tw, _), _ in sizes))
    y1 = min(h, 2 * pad + step * len(lines))
    panel = image[:y1, :x1]
    panel[:] = (panel.astype(np.float32) * 0.5).astype(np.uint8)  # half-transparent: the frame shows through
    for i, (text, colour) in enumerate(lines):
        y = pad + step * (i + 1) - 3
        cv2.putText(image, text, (pad, y), _FONT, scale, colour, thick, cv2.LINE_AA)
    return image
    h, w = image.shape[:2]
    scale = max(0.4, min(h, w) / 1000)
    thick = max(1, round(scale * 1.6))
    sizes = [cv2.getTextSize(text, _FONT, scale, thick) for text, _ in lines]
    step = max(th + base for (_, th), base in sizes) + int(6 * scale)
    pad = int(8 * scale) + 2
    x1 = min(w, 2 * pad + max(tw for (tw, _), _ in sizes))
    y1 = min(h, 2 * pad + step * len(lines))
    panel = image[:y1, :x1]
    panel[:] = (panel.astype(np.float32) * 0.35).astype(np.uint8)  # darken, keep a hint of the frame
    for i, (text, colour) in enumerate(lines):
        y = pad + step * (i + 1) - int(3 * scale)
        cv2.putText(image, text, (pad, y), _FONT, scale, colour, thick, cv2.LINE_AA)
    return image

