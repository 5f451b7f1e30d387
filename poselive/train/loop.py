"""Training: `poselive train CONFIG` runs in resumable chunks (checkpoint every few minutes; a rerun picks up
from `last.pt`), with intermediate supervision on every stack and a quick validation on a split no training
step sees.

What is trained is a *task*: it makes batches, computes the loss and validates. `KeypointTask` trains body or
face keypoint networks on person/face crops; `DetectionTask` trains the person-centre detector on scenes. The
loop itself (schedule, AMP, checkpoints, logging) is the same for all."""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from poselive.body_metrics import box_ap50, pck
from poselive.checkpoint import read_checkpoint, save_checkpoint
from poselive.codec import HeatmapCodec
from poselive.backends import TorchCPUBackend
from poselive.estimator import person_score
from poselive.keypoint_model import KeypointModel
from poselive.nets.configs import NetConfig
from poselive.nets.hourglass import StackedHourglass, count_params
from poselive.schemas import schema_by_name
from poselive.train.augment import AugmentConfig, augment_person
from poselive.det_codec import CentreCodec
from poselive.train.coco_data import CropCache
from poselive.train.det_data import DetCache, augment_scene
from poselive.train.negatives import negative_crop
from poselive.transforms import normalize_bgr

log = logging.getLogger("poselive.train")


@dataclass(frozen=True)
class TrainConfig:
    batch: int = 32
    lr: float = 1e-3
    lr_min: float = 5e-5
    total_steps: int = 60000          # cosine schedule length; training may stop earlier and resume later
    warmup_steps: int = 300
    weight_decay: float = 1e-4
    val_every: int = 500
    checkpoint_minutes: float = 4.0
    seed: int = 0


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    t = min(1.0, (step - tc.warmup_steps) / max(1, tc.total_steps - tc.warmup_steps))
    return tc.lr_min + 0.5 * (tc.lr - tc.lr_min) * (1 + math.cos(math.pi * t))


def predict_cache(model: StackedHourglass, cache: CropCache) -> np.ndarray:
    """Keypoints (M, K, 3: x, y, score) in cache px, from crops around each cached GT box (no augmentation), by
    the path inference takes (`KeypointModel.estimate_each`, batched) on a float32 CPU copy of the model."""
    keypoints = KeypointModel.from_backend(TorchCPUBackend(model))
    return keypoints.estimate_each(cache.images, np.asarray(cache.boxes, np.float64))


class KeypointTask:
    """Top-down keypoints on augmented crops; validation = PCK@0.2 on GT-box crops.

    empty_photos: (N, S, S, 3) photos with nobody in them (poselive.train.negatives); an `empty_prob` share of
    each batch is crops of those, whose target is empty heatmaps on every joint, so a crop with no person in
    it gets a low person score (the pipeline drops such crops, and the tracker ends tracks that lead to them).
    hard_empty: crops our detector proposes where nobody is (poselive.train.hard_negatives), keypoints all
    unlabelled; when given, `hard_share` of the empty crops are cut from them, as the pipeline cuts a detection.
    val_hard_empty: the same from held-out photos, for the validation log."""
    metric_name = "val PCK@0.2"

    def __init__(self, cfg: NetConfig, train_cache: CropCache, val_cache: CropCache | None, half_body: bool = True,
                 aug: AugmentConfig = AugmentConfig(), empty_photos: np.ndarray | None = None,
                 val_empty_photos: np.ndarray | None = None, empty_prob: float = 0.15,
                 hard_empty: CropCache | None = None, val_hard_empty: CropCache | None = None,
                 hard_share: float = 0.5):
        self.cfg, self.train_cache, self.val_cache, self.half_body, self.aug = cfg, train_cache, val_cache, half_body, aug
        self.codec = HeatmapCodec(cfg.input_wh, 4, cfg.sigma, cfg.blur_sigma)
        self.flip_perm = schema_by_name(cfg.schema).flip_permutation()
        self.empty_photos, self.val_empty_photos = empty_photos, val_empty_photos
        self.empty_prob = empty_prob if empty_photos is not None and len(empty_photos) else 0.0
        self.hard_empty, self.val_hard_empty = hard_empty, val_hard_empty
        self.hard_share = hard_share if hard_empty is not None and len(hard_empty) else 0.0

    def init_model(self, model: StackedHourglass) -> None:
        pass

    def batch(self, rng: np.random.Generator, n: int):
        crops, targets, weights = [], [], []
        for i in rng.integers(0, len(self.train_cache), n):
            crop, hm, w = self.empty_crop(rng) if rng.random() < self.empty_prob else self.sample(rng, int(i))
            crops.append(crop)
            targets.append(hm)
            weights.append(w)
        x = torch.from_numpy(normalize_bgr(np.stack(crops)))
        return x, (torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(weights)))

    def sample(self, rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training sample `i` augmented: (crop (H, W, 3) uint8, target heatmaps (K, h, w), joint weights (K,))."""
        cache = self.train_cache
        donor = cache.images[int(rng.integers(len(cache)))]
        crop, kps = augment_person(cache.images[i], cache.boxes[i], cache.keypoints[i], self.cfg.input_wh,
                                   self.flip_perm, self.aug, rng, donor, self.half_body)
        hm, w = self.codec.encode(kps)
        return crop, hm, w * cache.weights[i]

    def empty_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A crop with no person: (crop, *empty_target()): around a box the detector found on nobody, or a random
        crop of a photo of nobody."""
        if rng.random() < self.hard_share:
            cache = self.hard_empty
            j = int(rng.integers(len(cache)))
            crop, _ = augment_person(cache.images[j], cache.boxes[j], cache.keypoints[j], self.cfg.input_wh,
                                     self.flip_perm, self.aug, rng, None, False)
            return (crop, *self.empty_target())
        return (negative_crop(self.empty_photos, rng, self.cfg.input_wh, self.aug), *self.empty_target())

    def empty_target(self) -> tuple[np.ndarray, np.ndarray]:
        """The target of a crop with nobody in it: all-zero heatmaps (K, h, w), every joint weighted 1."""
        w, h = self.codec.heatmap_wh
        K = self.cfg.num_keypoints
        return np.zeros((K, h, w), np.float32), np.ones(K, np.float32)

    def loss(self, stacks: list[torch.Tensor], targets) -> torch.Tensor:
        """Joint-weighted MSE summed over joints and stacks, averaged over the batch (x100 for readable numbers)."""
        target, weight = targets
        total = 0.0
        for hm in stacks:
            per_joint = (hm[:, :self.cfg.num_keypoints].float() - target).pow(2).mean((2, 3))
            total = total + (per_joint * weight).sum(1).mean()
        return total * 100.0

    def validate(self, model: StackedHourglass) -> float:
        """PCK@0.2 on the validation people; with validation negatives, also logs how many of a fixed set of
        crops of them a person would be reported for (person score >= 0.4) against how many people are, and with
        held-out hard negatives, how many of those score 0.5 or more."""
        pred = predict_cache(model, self.val_cache)
        pos = np.array([person_score(k) for k in pred])
        if self.val_empty_photos is not None and len(self.val_empty_photos):
            model.eval()
            rng = np.random.default_rng(0)
            crops = np.stack([negative_crop(self.val_empty_photos, rng, self.cfg.input_wh, AugmentConfig(
                gray_prob=0.0, noise_prob=0.0, blur_prob=0.0)) for _ in range(256)])
            with torch.no_grad():
                hm = model(torch.from_numpy(normalize_bgr(crops)))[:, :self.cfg.num_keypoints].numpy()
            _, sc = self.codec.decode(hm)
            neg = np.array([person_score(np.c_[np.zeros((len(s), 2)), s]) for s in sc])
            log.info("person score >= 0.4: %.3f of validation people, %.3f of 256 crops of empty photos",
                     (pos >= 0.4).mean(), (neg >= 0.4).mean())
        if self.val_hard_empty is not None and len(self.val_hard_empty):
            hard = np.array([person_score(k) for k in predict_cache(model, self.val_hard_empty)])
            log.info("person score >= 0.5: %.3f of validation people, %.3f of %d held-out detector boxes on nobody",
                     (pos >= 0.5).mean(), (hard >= 0.5).mean(), len(hard))
        return pck(pred, self.val_cache.keypoints, self.val_cache.boxes)[0]

    def refresh(self, model: StackedHourglass) -> None:
        """Between validations: nothing to re-mine for keypoints."""


class DetectionTask:
    """Person centres + sizes on augmented scenes; validation = box AP at IoU 0.5 (detections scoring >= 0.05)."""
    metric_name = "val box AP@0.5"

    # Empty photos are grayscale (scene15): positives turn grey this often too, so grey alone never means nobody.
    def __init__(self, cfg: NetConfig, train_cache: DetCache, val_cache: DetCache | None,
                 aug: AugmentConfig = AugmentConfig(gray_prob=0.25)):
        self.cfg, self.train_cache, self.val_cache, self.aug = cfg, train_cache, val_cache, aug
        self.codec = CentreCodec()
        self.hm_wh = ((cfg.input_wh[0] + 3) // 4, (cfg.input_wh[1] + 3) // 4)
        self.draw_p: np.ndarray | None = None   # hard-negative mining's draw weights (refresh)

    def init_model(self, model: StackedHourglass) -> None:
        # Start the centre logits at a 10% prior (CenterNet), so the focal loss does not begin by shouting
        # "person" everywhere.
        for head in model.heads:
            torch.nn.init.constant_(head.bias[:1], -2.19)

    def batch(self, rng: np.random.Generator, n: int):
        imgs, centres, sizes, masks = [], [], [], []
        for _ in range(n):
            img, boxes = augment_scene(self.train_cache, rng, self.cfg.input_wh, self.aug, draw_p=self.draw_p)
            c, s, m = self.codec.encode(boxes, self.hm_wh)
            imgs.append(img)
            centres.append(c)
            sizes.append(s)
            masks.append(m)
        x = torch.from_numpy(normalize_bgr(np.stack(imgs)))
        return x, tuple(torch.from_numpy(np.stack(a)) for a in (centres, sizes, masks))

    def loss(self, stacks: list[torch.Tensor], targets) -> torch.Tensor:
        centre, size, mask = targets
        total = 0.0
        for out in stacks:
            out = out.float()
            # Penalty-reduced focal loss (CenterNet): positives where the target is exactly 1.
            p = torch.sigmoid(out[:, :1]).clamp(1e-4, 1 - 1e-4)
            pos = (centre >= 1.0).float()
            pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
            neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - centre) ** 4 * (1 - pos)).sum()
            n_pos = pos.sum().clamp(min=1.0)
            size_loss = ((out[:, 1:3] - size).abs() * mask).sum() / (2 * mask.sum().clamp(min=1.0))
            total = total + (pos_loss + neg_loss) / n_pos + size_loss
        return total

    @torch.no_grad()
    def _max_scores(self, model: StackedHourglass, images: np.ndarray) -> np.ndarray:
        """(M,) the highest person-centre probability the model gives anywhere in each image."""
        model.eval()
        out = [torch.sigmoid(model(torch.from_numpy(normalize_bgr(images[s:s + 16])))[:, 0]).amax((1, 2)).numpy()
               for s in range(0, len(images), 16)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def validate(self, model: StackedHourglass) -> float:
        """Box AP at IoU 0.5 over the validation images, empty photos included: a person found in an empty
        photo is a false alarm in the ranking like any other. Also logs the empty photos with a box >= 0.2."""
        model.eval()
        cache = self.val_cache
        dets = []
        for s in range(0, len(cache), 16):
            out = model(torch.from_numpy(normalize_bgr(cache.images[s:s + 16]))).numpy()
            dets += self.codec.decode(out, threshold=0.05)
        if cache.empty is not None and cache.empty.any():
            phantom = [len(d) and d[:, 4].max() >= 0.2 for d, e in zip(dets, cache.empty) if e]
            log.info("empty validation photos with a person found at 0.2: %d of %d", sum(map(bool, phantom)),
                     len(phantom))
        return box_ap50(cache.boxes, dets)

    def refresh(self, model: StackedHourglass) -> None:
        """Hard-negative mining: score every empty training photo with the current model and draw each in
        proportion to 0.25 + 4 x its highest person score, so the photos it sees people in come back far more
        often (a clean one ~1/4 as often as a labelled photo, the worst ~17x)."""
        empty = self.train_cache.empty
        if empty is None or not empty.any():
            return
        w = np.ones(len(self.train_cache))
        w[empty] = 0.25 + 4.0 * self._max_scores(model, self.train_cache.images[empty])
        self.draw_p = w / w.sum()
        log.info("hard negatives: %d empty photos, %.0f%% of draws (the top 5%% score >= %.2f)", int(empty.sum()),
                 100 * self.draw_p[empty].sum(), np.quantile((w[empty] - 0.25) / 4, 0.95))


def train(task, out_dir: Path, minutes: float | None = None, max_steps: int | None = None,
          tc: TrainConfig = TrainConfig(), resume: bool = True, device: str = "cpu", progress: bool = True,
          start_from: StackedHourglass | None = None) -> dict:
    """Train until `minutes` or `max_steps` (whichever first), checkpointing to out_dir/last.pt and the best
    validation figure to out_dir/best.pt. Returns the last figures (step, loss, val).

    start_from: trained weights to begin a new run with (poselive.train.warm_start), instead of a fresh network;
    a run that resumes from its last.pt ignores it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    cfg = task.cfg  # the task makes its crops and targets at this config's input size
    step, best = 0, -1.0
    blob = read_checkpoint(last_path) if resume and last_path.exists() else None
    if blob is not None:
        step, best = int(blob["step"]), float(blob.get("best_metric", blob.get("best_pck", -1.0)))
        cfg = NetConfig.from_dict(blob["config"])
        if cfg.input_wh != task.cfg.input_wh:
            # The state was saved at another input size than the task's (body-lite-160 began as body-lite's
            # 128x96 state). The network is fully convolutional: the same weights train on at the task's size,
            # under the task's name; a best measured at the old size is no yardstick for the new one.
            log.info("input size is now %s (was %s): best reset", task.cfg.input_wh, cfg.input_wh)
            cfg = replace(cfg, name=task.cfg.name, input_wh=task.cfg.input_wh)
            best = -1.0
        model = StackedHourglass(cfg)
        model.load_state_dict(blob["state_dict"])
        if blob.get("metric_name", task.metric_name) != task.metric_name:
            # The validation figure changed meaning (e.g. F1 -> AP): an old best is no yardstick for the new one.
            log.info("validation metric is now %s (was %s): best reset", task.metric_name, blob["metric_name"])
            best = -1.0
        log.info("resumed %s at step %d (best %s %.4f)", last_path, step, task.metric_name, best)
    elif start_from is not None:
        if start_from.cfg != cfg:
            raise ValueError(f"start_from is a {start_from.cfg.name} network, the task trains {cfg.name}")
        model = start_from
        log.info("new %s from trained weights: %.2fM parameters, input %s", cfg.name, count_params(model) / 1e6,
                 cfg.input_wh)
    else:
        model = StackedHourglass(cfg)
        task.init_model(model)
        log.info("new %s: %.2fM parameters, input %s", cfg.name, count_params(model) / 1e6, cfg.input_wh)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    if blob is not None:
        opt.load_state_dict(blob["optimizer"])
    model.to(device)
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(tc.seed * 1_000_003 + step)  # resuming continues with fresh, reproducible draws
    torch.manual_seed(tc.seed + step)

    def save(path: Path, **extra):
        model.cpu()
        save_checkpoint(path, model, extra)
        model.to(device)

    def validate(step: int, best: float) -> float:
        v = task.validate(model.cpu())
        model.to(device)
        figures["val"] = v
        log.info("step %d  loss %.4f  %s %.4f  lr %.2e  %.1f steps/min", step, figures["loss"], task.metric_name, v,
                 lr_at(step, tc), (step - start_step) / max((time.time() - t0) / 60, 1e-9))
        if v > best:
            save(best_path, step=step, val_metric=v, metric_name=task.metric_name)
            return v
        return best

    t0 = last_ckpt = time.time()
    figures = {"step": step, "loss": float("nan"), "val": best}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=max_steps, desc=cfg.name, file=sys.stderr, mininterval=10, dynamic_ncols=True)
    ema_loss = None
    start_step = step
    task.refresh(model.cpu())
    model.to(device)
    try:
        while not ((max_steps is not None and step - start_step >= max_steps)
                   or (minutes is not None and time.time() - t0 > minutes * 60)):
            model.train()
            lr = lr_at(step, tc)
            for g in opt.param_groups:
                g["lr"] = lr
            x, targets = task.batch(rng, tc.batch)
            x, targets = x.to(device), tuple(t.to(device) for t in targets)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                stacks = model.forward_stacks(x)
            loss = task.loss(stacks, targets)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
            figures.update(step=step, loss=ema_loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{ema_loss:.3f}", val=f"{best:.3f}", lr=f"{lr:.1e}", refresh=False)
            if task.val_cache is not None and step % tc.val_every == 0:
                best = validate(step, best)
                task.refresh(model.cpu())
                model.to(device)
            if time.time() - last_ckpt > tc.checkpoint_minutes * 60:
                save(last_path, optimizer=opt.state_dict(), step=step, best_metric=best, metric_name=task.metric_name)
                last_ckpt = time.time()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (train_command turns it into this): save, then stop
        log.info("interrupted at step %d", step)
    if task.val_cache is not None and step % tc.val_every != 0 and step > start_step:
        best = validate(step, best)  # a chunk's last weights are validated too, so none go unjudged
    save(last_path, optimizer=opt.state_dict(), step=step, best_metric=best, metric_name=task.metric_name)
    if bar is not None:
        bar.close()
    log.info("stopped at step %d, loss %.4f; checkpoint %s", step, figures["loss"], last_path)
    return figures
