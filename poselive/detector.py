"""Finding people: the body-det network on the whole frame, letterboxed to `input_size`, decoded into boxes."""
from __future__ import annotations

import numpy as np

from poselive.det_codec import CentreCodec
from poselive.transforms import apply_matrix, invert_matrix, normalize_bgr, warp_crop
from poselive.train.det_data import letterbox_matrix


class PersonDetector:
    """image (H, W, 3) uint8 BGR -> boxes (M, 5): x, y, w, h in image px and score, best first.

    backend: a poselive.backends Backend running the body-det network. input_size: the letterbox side in px
    (larger finds smaller people, costs more)."""

    def __init__(self, backend, input_size: int = 256, threshold: float = 0.2, max_people: int = 30):
        self.backend = backend
        self.input_size = input_size
        self.threshold = threshold
        self.max_people = max_people
        self.codec = CentreCodec()

    def __call__(self, image: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """threshold: this call's person-centre score cut (None: the detector's own)."""
        h, w = image.shape[:2]
        m = letterbox_matrix((w, h), self.input_size)
        canvas = warp_crop(image, m, (self.input_size, self.input_size))
        out = self.backend.run(normalize_bgr(canvas[None]))
        boxes = self.codec.decode(out, self.threshold if threshold is None else threshold, self.max_people)[0]
        if len(boxes) == 0:
            return boxes.reshape(0, 5)
        inv = invert_matrix(m)
        tl = apply_matrix(inv, boxes[:, :2])
        br = apply_matrix(inv, boxes[:, :2] + boxes[:, 2:4])
        tl = np.clip(tl, 0, [w - 1, h - 1])
        br = np.clip(br, 0, [w - 1, h - 1])
        res = np.c_[tl, br - tl, boxes[:, 4]].astype(np.float32)
        return res[(res[:, 2] >= 2) & (res[:, 3] >= 2)]
