"""Finding people: a person-centre network (body-det-2 by default) on the whole frame, letterboxed to
`input_size` and again to half that (for people too large for the first pass), decoded into boxes and merged;
optionally also on the frame's four corner tiles, for small people."""
from __future__ import annotations

import numpy as np

from poselive.boxes import nms
from poselive.det_codec import CentreCodec
from poselive.transforms import apply_matrix, invert_matrix, letterbox_matrix, normalize_bgr, warp_crop

TILE_FRACTION = 0.6   # each corner tile spans 60% of the frame's width and height: they overlap by 20%
TILE_EDGE_PX = 2.0    # a box within this of a tile's inner edge was cut by the tile
NMS_IOU = 0.6         # boxes overlapping more are one person (the decoder's NMS, and the tiles' merge)


class PersonDetector:
    """image (H, W, 3) uint8 BGR -> boxes (M, 5): x, y, w, h in image px and score, best first.

    backend: a poselive.backends Backend running a person-centre network (body-det or body-det-2). input_size:
    the letterbox side in px (larger finds smaller people, costs more). half_pass: also run the whole frame
    letterboxed to half that side and merge. The network sees a fixed number of px around each centre, so a
    person filling the frame (a close-up, someone seated at the camera) is beyond what the main pass can size;
    at half the side he is not.
    Measured with the shipped body-det at threshold 0.1 (its 2026-11-30 13:26 weights, `runs/pyrexp.py`): people
    boxed at IoU 0.5 went 0.807 -> 0.845 on our validation split and 0.547 -> 0.593 on coco_mini, box AP@0.5
    0.584 -> 0.635 and 0.129 -> 0.130, for a quarter of a pass more. tiles: also run on the four corner tiles
    (TILE_FRACTION of each side) and merge; a small person then gets 1 / TILE_FRACTION times the pixels, for four
    more full-size network passes. A still photo can afford that; the live pipeline does not use it."""

    def __init__(self, backend, input_size: int = 256, threshold: float = 0.2, max_people: int = 30,
                 tiles: bool = False, half_pass: bool = True):
        self.backend = backend
        self.input_size = input_size
        self.threshold = threshold
        self.max_people = max_people
        self.tiles = tiles
        self.half_pass = half_pass
        self.codec = CentreCodec()

    def __call__(self, image: np.ndarray, threshold: float | None = None, half_pass: bool | None = None
                 ) -> np.ndarray:
        """threshold, half_pass: this call's person-centre score cut and half-size pass (None: the detector's
        own)."""
        thr = self.threshold if threshold is None else threshold
        half = self.half_pass if half_pass is None else half_pass
        found = [self._one_pass(image, thr, self.input_size)]
        if half:
            found.append(self._one_pass(image, thr, max(self.input_size // 2, 32)))
        if self.tiles:
            found += [self._tile(image, x0, y0, w, h, thr) for x0, y0, w, h in corner_tiles(image.shape)]
        if len(found) == 1:
            return found[0]
        # max_people holds per pass, not for the merge: a crowd spread over the tiles is more than one pass's.
        return nms(np.concatenate(found).astype(np.float32), NMS_IOU)

    def _one_pass(self, image: np.ndarray, thr: float, size: int) -> np.ndarray:
        """Boxes (M, 5) the network finds in `image` (a frame or a tile) letterboxed whole to `size`, in its px."""
        h, w = image.shape[:2]
        m = letterbox_matrix((w, h), size)
        canvas = warp_crop(image, m, (size, size))
        out = self.backend.run(normalize_bgr(canvas[None]))
        boxes = self.codec.decode(out, thr, self.max_people, NMS_IOU)[0]
        if len(boxes) == 0:
            return boxes.reshape(0, 5)
        inv = invert_matrix(m)
        tl = apply_matrix(inv, boxes[:, :2])
        br = apply_matrix(inv, boxes[:, :2] + boxes[:, 2:4])
        tl = np.clip(tl, 0, [w - 1, h - 1])
        br = np.clip(br, 0, [w - 1, h - 1])
        res = np.c_[tl, br - tl, boxes[:, 4]].astype(np.float32)
        return res[(res[:, 2] >= 2) & (res[:, 3] >= 2)]

    def _tile(self, image: np.ndarray, x0: int, y0: int, w: int, h: int, thr: float) -> np.ndarray:
        """Boxes found in one tile, in image px. A box touching an edge the tile shares with the frame's inside
        is a person cut in two by the tile: dropped, as the whole frame or a neighbouring tile sees all of him."""
        H, W = image.shape[:2]
        d = self._one_pass(image[y0:y0 + h, x0:x0 + w], thr, self.input_size)
        e = TILE_EDGE_PX
        cut = (((x0 > 0) & (d[:, 0] < e)) | ((x0 + w < W) & (d[:, 0] + d[:, 2] > w - 1 - e))
               | ((y0 > 0) & (d[:, 1] < e)) | ((y0 + h < H) & (d[:, 1] + d[:, 3] > h - 1 - e)))
        d = d[~cut]
        d[:, :2] += (x0, y0)
        return d


def corner_tiles(shape) -> list[tuple[int, int, int, int]]:
    """The four corner tiles (x0, y0, w, h) of an image of `shape` (H, W, ...), TILE_FRACTION of each side."""
    H, W = shape[:2]
    w, h = max(int(W * TILE_FRACTION), 1), max(int(H * TILE_FRACTION), 1)
    return [(x0, y0, w, h) for y0 in (0, H - h) for x0 in (0, W - w)]
