"""One top-down keypoint network: boxes in an image -> keypoints in image px. The one place where crops are
cut, run through the network, decoded and mapped back; the estimators, the live pipeline, the benchmarks and
training's validation all call `KeypointModel.estimate`.

    boxes (x, y, w, h image px) -> affine crops (transforms) -> network (backends) -> heatmaps
        -> peaks in heatmap px (codec) -> inverse affine -> keypoints (M, K, 3) in image px
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from poselive.codec import HeatmapCodec
from poselive.errors import WeightsError
from poselive.schemas import schema_by_name
from poselive.timing import StageTimer
from poselive.transforms import box_to_crop, crop_matrix, crop_to_image, normalize_bgr, warp_crop
from poselive.weights import resolve_weights


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class CropEstimate:
    """What one `KeypointModel.estimate_crops` call saw and found, per box: keypoints (M, K, 3) float32 x, y in
    image px and score; heatmaps (M, K, h, w) float32; matrices: M 2x3 affines image px -> crop px."""
    keypoints: np.ndarray
    heatmaps: np.ndarray
    matrices: list[np.ndarray]


class KeypointModel:
    """One top-down keypoint network behind a backend (see backends.py): crops (boxes) of an image ->
    keypoints in image px. Build it from weights (a shipped name or a .pt path) or, with `from_backend`, around
    a backend already made (a model in training, a backend under benchmark)."""

    def __init__(self, model: str | os.PathLike, device: str = "auto", expect_schema: str | None = None,
                 threads: int | None = None):
        from poselive.backends import make_backend
        path = resolve_weights(model)
        self._use(make_backend(path, device, threads=threads))
        if expect_schema and self.cfg.schema != expect_schema:
            raise WeightsError(f"{path} predicts {self.cfg.schema} keypoints, not {expect_schema}")

    @classmethod
    def from_backend(cls, backend) -> KeypointModel:
        """A KeypointModel around a backend whose `config` is the network's NetConfig."""
        km = cls.__new__(cls)
        km._use(backend)
        return km

    def _use(self, backend) -> None:
        self.backend = backend
        self.cfg = backend.config
        self.codec = HeatmapCodec(self.cfg.input_wh, 4, self.cfg.sigma, self.cfg.blur_sigma)

    def estimate(self, image: np.ndarray, boxes_xywh: np.ndarray, flip: bool = False) -> np.ndarray:
        """Keypoints (M, K, 3: x, y in image px, score) float32, one row per box (x, y, w, h image px) in
        order. image: (H, W, 3) uint8 BGR. flip: see `estimate_crops`."""
        return self.estimate_crops(image, boxes_xywh, flip).keypoints

    def estimate_crops(self, image: np.ndarray, boxes_xywh: np.ndarray, flip: bool = False,
                       timer: StageTimer | None = None, max_batch: int = 16) -> CropEstimate:
        """`estimate`, keeping the heatmaps and crop affines (for the heatmap overlay). Each box is grown by
        1.25 and widened to the network's aspect (transforms.box_to_crop).

        flip: also run the mirrored crops and average in their heatmaps, mirrored back with left and right
        swapped (flip test, as in SimpleBaseline / HRNet). Pixel centres mirror exactly at stride 4, so no
        shift is needed. Twice the network time; for still images, not the live pipeline. timer: times the
        stages "preprocess", "network" and "decode"."""
        return self._estimate([image] * len(boxes_xywh), boxes_xywh, flip, timer, max_batch)

    def estimate_each(self, images, boxes_xywh: np.ndarray, max_batch: int = 64) -> np.ndarray:
        """Keypoints (M, K, 3) as `estimate` gives them, for one box in each of M images, batched across the
        images (training's validation: one person in each cached crop)."""
        return self._estimate(list(images), boxes_xywh, False, None, max_batch).keypoints

    def _estimate(self, images: list, boxes_xywh, flip: bool, timer: StageTimer | None, max_batch: int
                  ) -> CropEstimate:
        """Box i of `boxes_xywh` is looked for in images[i]."""
        stage = timer.stage if timer is not None else (lambda name: nullcontext())
        W, H = self.cfg.input_wh
        K = self.cfg.num_keypoints
        with stage("preprocess"):
            mats = [crop_matrix(box_to_crop(b, self.cfg.input_wh, 1.25), self.cfg.input_wh) for b in boxes_xywh]
            batch = (normalize_bgr(np.stack([warp_crop(im, m, self.cfg.input_wh) for im, m in zip(images, mats)]))
                     if mats else np.zeros((0, 3, H, W), np.float32))
        with stage("network"):
            heatmaps = self._network(batch, max_batch, flip)
        with stage("decode"):
            if len(heatmaps) == 0:
                keypoints = np.zeros((0, K, 3), np.float32)
            else:
                xy, scores = self.codec.decode(heatmaps)
                keypoints = crop_to_image(mats, xy, scores)
        return CropEstimate(keypoints, heatmaps, mats)

    def _network(self, batch: np.ndarray, max_batch: int, flip: bool) -> np.ndarray:
        """(M, 3, H, W) normalised crops -> keypoint heatmaps (M, K, h, w) float32, in batches of max_batch."""
        K = self.cfg.num_keypoints
        if len(batch) == 0:
            w, h = self.codec.heatmap_wh
            return np.zeros((0, K, h, w), np.float32)
        if flip:
            both = self._network(np.concatenate([batch, batch[..., ::-1]]), max_batch, False)
            mirrored = both[len(batch):, schema_by_name(self.cfg.schema).flip_permutation(), :, ::-1]
            return (both[:len(batch)] + mirrored) / 2
        return np.concatenate([self.backend.run(batch[s:s + max_batch])[:, :K]
                               for s in range(0, len(batch), max_batch)])
