"""Person boxes <-> centre heatmap + size maps (CenterNet-style, Zhou et al. 2019), at output stride 4.

Channel 0 holds logits of a Gaussian at each box centre (sigmoid at decode); channels 1-2 hold log(box width)
and log(box height) in heatmap px, supervised on the 3x3 pixels around each centre. Coordinates follow the
pixel-centre convention of poselive.codec (`input_to_heatmap`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poselive.boxes import nms
from poselive.codec import find_peaks, heatmap_to_input, input_to_heatmap


@dataclass(frozen=True)
class CentreCodec:
    stride: int = 4
    min_sigma: float = 0.8
    sigma_per_size: float = 0.08   # Gaussian sigma as a fraction of the box's geometric-mean size

    def encode(self, boxes_xywh: np.ndarray, heatmap_wh: tuple[int, int]):
        """boxes (M, 4) in input px -> centre (1, h, w) float32 in [0, 1], size (2, h, w) float32, size_mask
        (1, h, w) float32."""
        w, h = heatmap_wh
        centre = np.zeros((h, w), np.float32)
        size = np.zeros((2, h, w), np.float32)
        mask = np.zeros((h, w), np.float32)
        ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
        # Big boxes first, small last: where centres crowd together the small person's size wins the pixels.
        order = np.argsort(-(boxes_xywh[:, 2] * boxes_xywh[:, 3])) if len(boxes_xywh) else []
        for i in order:
            bx, by, bw, bh = boxes_xywh[i]
            c = input_to_heatmap(np.array([bx + bw / 2, by + bh / 2]), self.stride)
            bw_hm, bh_hm = max(bw / self.stride, 0.5), max(bh / self.stride, 0.5)
            if not (-0.5 <= c[0] <= w - 0.5 and -0.5 <= c[1] <= h - 0.5):
                continue
            s = max(self.min_sigma, self.sigma_per_size * np.sqrt(bw_hm * bh_hm))
            g = np.exp(-((xs - c[0]) ** 2 + (ys - c[1]) ** 2) / (2 * s * s)).astype(np.float32)
            np.maximum(centre, g, out=centre)
            cx, cy = int(round(c[0])), int(round(c[1]))
            y0, y1, x0, x1 = max(cy - 1, 0), min(cy + 2, h), max(cx - 1, 0), min(cx + 2, w)
            size[0, y0:y1, x0:x1] = np.log(bw_hm)
            size[1, y0:y1, x0:x1] = np.log(bh_hm)
            mask[y0:y1, x0:x1] = 1.0
            # The focal loss needs a pixel that is exactly 1 per person (its positive).
            centre[min(max(cy, 0), h - 1), min(max(cx, 0), w - 1)] = 1.0
        return centre[None], size, mask[None]

    def decode(self, outputs: np.ndarray, threshold: float = 0.3, topk: int = 30, nms_iou: float = 0.6
               ) -> list[np.ndarray]:
        """outputs (N, 3, h, w) raw network output -> per image an array (M, 5): x, y, w, h in input px, score."""
        logits = outputs[:, :1].astype(np.float32)
        prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        xy, scores, counts = find_peaks(prob, threshold, topk, blur_sigma=0.0)
        h, w = outputs.shape[-2:]
        result = []
        for n in range(outputs.shape[0]):
            k = int(counts[n, 0])
            pts, sc = xy[n, 0, :k], scores[n, 0, :k]
            ix = np.clip(np.rint(pts[:, 0]).astype(int), 0, w - 1)
            iy = np.clip(np.rint(pts[:, 1]).astype(int), 0, h - 1)
            bw = np.exp(np.clip(outputs[n, 1, iy, ix], -3, 8)) * self.stride
            bh = np.exp(np.clip(outputs[n, 2, iy, ix], -3, 8)) * self.stride
            c = heatmap_to_input(pts, self.stride)
            boxes = np.c_[c[:, 0] - bw / 2, c[:, 1] - bh / 2, bw, bh, sc].astype(np.float32)
            result.append(nms(boxes, nms_iou))
        return result
