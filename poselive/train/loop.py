"""Training: `poselive train CONFIG` runs in resumable chunks (checkpoint every few minutes, `--resume` picks
up from `last.pt`), with intermediate supervision on every stack and a quick PCK@0.2 validation on a split no
training step sees."""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from poselive.checkpoint import read_checkpoint, save_checkpoint
from poselive.codec import HeatmapCodec
from poselive.nets.configs import NetConfig, config_by_name
from poselive.nets.hourglass import StackedHourglass, count_params
from poselive.schemas import schema_by_name
from poselive.train.augment import AugmentConfig, augment_person
from poselive.train.coco_data import CropCache
from poselive.transforms import apply_matrix, box_to_crop, crop_matrix, invert_matrix, normalize_bgr, warp_crop

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


def make_batch(cache: CropCache, idx: np.ndarray, cfg: NetConfig, codec: HeatmapCodec, aug: AugmentConfig,
               rng: np.random.Generator, flip_perm: np.ndarray):
    crops, targets, weights = [], [], []
    for i in idx:
        donor = cache.images[int(rng.integers(len(cache)))]
        crop, kps = augment_person(cache.images[i], cache.boxes[i], cache.keypoints[i], cfg.input_wh, flip_perm,
                                   aug, rng, donor)
        hm, w = codec.encode(kps)
        crops.append(crop)
        targets.append(hm)
        weights.append(w * cache.weights[i])
    x = torch.from_numpy(normalize_bgr(np.stack(crops)))
    return x, torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(weights))


def heatmap_loss(stacks: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Joint-weighted MSE summed over joints and stacks, averaged over the batch (x100 for readable numbers)."""
    total = 0.0
    for hm in stacks:
        per_joint = (hm.float() - target).pow(2).mean((2, 3))
        total = total + (per_joint * weight).sum(1).mean()
    return total * 100.0


@torch.no_grad()
def predict_cache(model: StackedHourglass, cache: CropCache, codec: HeatmapCodec, batch: int = 64) -> np.ndarray:
    """Keypoints (M, K, 3: x, y, score) in cache px, from crops around each cached GT box (no augmentation)."""
    model.eval()
    cfg = model.cfg
    out = []
    for s in range(0, len(cache), batch):
        mats, crops = [], []
        for i in range(s, min(len(cache), s + batch)):
            m = crop_matrix(box_to_crop(cache.boxes[i], cfg.input_wh), cfg.input_wh)
            mats.append(m)
            crops.append(warp_crop(cache.images[i], m, cfg.input_wh))
        hm = model(torch.from_numpy(normalize_bgr(np.stack(crops))))[:, :cfg.num_keypoints].numpy()
        xy, sc = codec.decode(hm)
        for j, m in enumerate(mats):
            out.append(np.c_[apply_matrix(invert_matrix(m), xy[j]), sc[j]])
    return np.stack(out)


def pck(pred: np.ndarray, kps: np.ndarray, boxes: np.ndarray, alpha: float = 0.2) -> tuple[float, np.ndarray]:
    """PCK@alpha of the box's longer side over labelled joints: (overall, per joint)."""
    lab = kps[:, :, 2] > 0
    thr = alpha * boxes[:, 2:4].max(1)
    ok = (np.linalg.norm(pred[:, :, :2] - kps[:, :, :2], axis=2) <= thr[:, None]) & lab
    per_joint = ok.sum(0) / np.maximum(lab.sum(0), 1)
    return float(ok.sum() / max(lab.sum(), 1)), per_joint


def train(config_name: str, train_cache: CropCache, val_cache: CropCache | None, out_dir: Path,
          minutes: float | None = None, max_steps: int | None = None, tc: TrainConfig = TrainConfig(),
          resume: bool = True, device: str = "cpu", progress: bool = True) -> dict:
    """Train until `minutes` or `max_steps` (whichever first), checkpointing to out_dir/last.pt and the best
    validation PCK to out_dir/best.pt. Returns the last figures (step, loss, val_pck)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    cfg = config_by_name(config_name)
    model = StackedHourglass(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    step, best = 0, -1.0
    if resume and last_path.exists():
        blob = read_checkpoint(last_path)
        cfg = NetConfig.from_dict(blob["config"])
        model = StackedHourglass(cfg)
        model.load_state_dict(blob["state_dict"])
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        opt.load_state_dict(blob["optimizer"])
        step, best = int(blob["step"]), float(blob.get("best_pck", -1.0))
        log.info("resumed %s at step %d (best val PCK@0.2 %.4f)", last_path, step, best)
    else:
        log.info("new %s: %.2fM parameters, input %s", cfg.name, count_params(model) / 1e6, cfg.input_wh)
    model.to(device)
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    codec = HeatmapCodec(cfg.input_wh, 4, cfg.sigma, cfg.blur_sigma)
    flip_perm = schema_by_name(cfg.schema).flip_permutation()
    aug = AugmentConfig()
    rng = np.random.default_rng(tc.seed * 1_000_003 + step)  # resuming continues with fresh, reproducible draws
    torch.manual_seed(tc.seed + step)

    def save(path: Path):
        save_checkpoint(path, model, {"optimizer": opt.state_dict(), "step": step, "best_pck": best})

    t0 = last_ckpt = time.time()
    figures = {"step": step, "loss": float("nan"), "val_pck": best}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=max_steps, initial=0, desc=cfg.name, file=sys.stderr, mininterval=10, dynamic_ncols=True)
    ema_loss = None
    start_step = step
    while True:
        if max_steps is not None and step - start_step >= max_steps:
            break
        if minutes is not None and time.time() - t0 > minutes * 60:
            break
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        idx = rng.integers(0, len(train_cache), tc.batch)
        x, target, weight = make_batch(train_cache, idx, cfg, codec, aug, rng, flip_perm)
        x, target, weight = x.to(device), target.to(device), weight.to(device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            stacks = model.forward_stacks(x)
        loss = heatmap_loss([s[:, :cfg.num_keypoints] for s in stacks], target, weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        figures.update(step=step, loss=ema_loss)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema_loss:.3f}", val_pck=f"{best:.3f}", lr=f"{lr_at(step, tc):.1e}", refresh=False)
        if val_cache is not None and step % tc.val_every == 0:
            p, _ = pck(predict_cache(model, val_cache, codec), val_cache.keypoints, val_cache.boxes)
            figures["val_pck"] = p
            log.info("step %d  loss %.4f  val PCK@0.2 %.4f  lr %.2e  %.1f steps/min", step, ema_loss, p,
                     lr_at(step, tc), (step - start_step) / max((time.time() - t0) / 60, 1e-9))
            if p > best:
                best = p
                model.cpu()
                save_checkpoint(best_path, model, {"step": step, "val_pck": p})
                model.to(device)
        if time.time() - last_ckpt > tc.checkpoint_minutes * 60:
            model.cpu()
            save(last_path)
            model.to(device)
            last_ckpt = time.time()
    model.cpu()
    save(last_path)
    if bar is not None:
        bar.close()
    log.info("stopped at step %d, loss %.4f; checkpoint %s", step, figures["loss"], last_path)
    return figures
