"""`poselive train CONFIG`: build the data for a named config and run the training loop in a resumable chunk."""
from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path

import torch

from poselive.errors import PoseliveError
from poselive.nets.configs import config_by_name
from poselive.train.loop import DetectionTask, KeypointTask, TrainConfig, train
from poselive.weights import FACE_REFINE, FACE_SHAPE, FACE_TREES, resolve_weights, training_state

log = logging.getLogger("poselive.train")


def make_task(config_name: str, data: str | None, cache_dir: Path = Path("cache")):
    from poselive.train.coco_data import build_cache, body_records, data_root, split_of
    cfg = config_by_name(config_name)
    root = data_root(data)
    if not root.exists():
        raise PoseliveError(f"training data folder {root} does not exist; pass --data or set POSELIVE_DATA")
    if cfg.schema == "coco17":
        recs = body_records(root)
        tr = [r for r in recs if split_of(r) == "train"]
        va = [r for r in recs if split_of(r) == "val"]
        from poselive.train.det_data import negative_split
        from poselive.train.negatives import build_negative_cache
        # Crops of photos with nobody in them teach a low person score where there is no person.
        empty = build_negative_cache(negative_split(root, "train"), cache_dir / "negatives-train")
        val_empty = build_negative_cache(negative_split(root, "val"), cache_dir / "negatives-val")
        hard, val_hard = hard_negative_caches(root, cache_dir)
        return KeypointTask(cfg, build_cache(tr, cache_dir / "body-train"), build_cache(va, cache_dir / "body-val"),
                            empty_photos=empty, val_empty_photos=val_empty, hard_empty=hard, val_hard_empty=val_hard)
    if cfg.schema == "person_centre":
        from poselive.train.det_data import build_det_cache, det_items, det_split_of
        items = det_items(root)
        tr = [i for i in items if det_split_of(i) == "train"]
        va = [i for i in items if det_split_of(i) == "val"]
        return DetectionTask(cfg, build_det_cache(tr, cache_dir / "det-train"), build_det_cache(va, cache_dir / "det-val"))
    if cfg.schema == "face68":
        from poselive.train.face_data import face_task
        return face_task(config_name, root, cache_dir)
    raise PoseliveError(f"no training recipe for schema {cfg.schema}")


def hard_negative_caches(root: Path, cache_dir: Path):
    """(train, val) crops where the shipped person detector finds somebody and nobody is
    (poselive.train.hard_negatives); (None, None) without its weights."""
    from poselive.backends import make_backend
    from poselive.detector import PersonDetector
    from poselive.train.hard_negatives import hard_negative_cache
    from poselive.weights import DEFAULT_DETECTOR
    try:
        detector_file = resolve_weights(DEFAULT_DETECTOR)
        detector = PersonDetector(make_backend(detector_file, "auto"), half_pass=False)  # as the live pipeline
    except PoseliveError as e:
        log.warning("no hard negatives: %s", e)
        return None, None
    return tuple(hard_negative_cache(detector, detector_file, root, split, cache_dir) for split in ("train", "val"))


def train_command(args) -> int:
    if args.config == FACE_TREES:  # regression trees, not a network: dlib's trainer, one run
        from poselive.train.face_trees import train_command as train_trees_command
        return train_trees_command(args)
    if args.config == FACE_REFINE:  # a patch network with its own data and loop (poselive.train.face_refine)
        from poselive.train.face_refine import train_command as train_refine_command
        return train_refine_command(args)
    if args.config == FACE_SHAPE:  # a Gaussian shape model, fitted in seconds (poselive.train.face_shape)
        from poselive.train.face_shape import train_command as train_shape_command
        return train_shape_command(args)
    out = Path(args.out or f"runs/{args.config}")
    if args.ship:
        from poselive.weights import models_dir
        for p in ship(args.config, out, models_dir(), average=args.average):
            print(f"shipped {p} ({p.stat().st_size / 1e6:.1f} MB)")
        return 0
    resume_state = training_state(args.config)
    if not args.no_resume and not (out / "last.pt").exists() and resume_state.exists():
        # A fresh machine: carry on from the training state the last session committed.
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resume_state, out / "last.pt")
        log.info("resuming from the committed training state %s", resume_state)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("poselive").addHandler(handler)
    task = make_task(args.config, args.data)
    # `kill` (SIGTERM) stops training the way Ctrl-C does: the loop validates and saves before it exits.
    signal.signal(signal.SIGTERM, _interrupt)
    tc = TrainConfig(batch=args.batch, lr=args.lr, total_steps=args.total_steps)
    resume = not args.no_resume
    start_from = None
    if args.start_from and not (resume and (out / "last.pt").exists()):
        start_from = grown_from(args.start_from, task.cfg)
    figures = train(task, out, minutes=args.minutes, max_steps=args.steps, tc=tc,
                    resume=resume, device=device, progress=True, start_from=start_from)
    print(f"{args.config}: step {figures['step']}, loss {figures['loss']:.4f}, {task.metric_name} "
          f"{figures['val']:.4f}; checkpoints in {out}")
    return 0


def grown_from(source: str, cfg):
    """The network `cfg` describes, begun from a trained model's weights: `source` is a model name (its training
    state in models/checkpoints/, else its shipped weights) or a checkpoint file."""
    from poselive.checkpoint import read_checkpoint
    from poselive.nets.configs import NetConfig
    from poselive.train.warm_start import grow_stacks
    state = training_state(source)
    path = state if not Path(source).suffix and state.exists() else resolve_weights(source)
    blob = read_checkpoint(path)
    log.info("starting %s from %s (step %s)", cfg.name, path, blob.get("step"))
    return grow_stacks(blob["state_dict"], NetConfig.from_dict(blob["config"]), cfg)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def ship(config_name: str, run_dir: Path, models: Path, average: list[str] | None = None) -> list[Path]:
    """Copy a run's best weights into models/ as shipped files: `<name>.pt` (float16 weights, no optimizer),
    `<name>.onnx` beside it (exported from those very weights), and the latest training state as
    `checkpoints/<name>-last.pt` so a later session on a fresh machine resumes instead of restarting.

    average: ship the mean of these saved states' weights instead of best.pt (poselive.checkpoint.average_weights)."""
    from poselive.backends import export_onnx, file_sha256
    from poselive.checkpoint import (average_weights, load_model, model_from_checkpoint, read_checkpoint,
                                     save_checkpoint)
    best, last = run_dir / "best.pt", run_dir / "last.pt"
    if average:
        model, steps = average_weights(average)
        if model.cfg.name != config_name:
            raise PoseliveError(f"the states to average are {model.cfg.name}'s, not {config_name}'s")
        extra = {"step": max(steps), "averaged_steps": steps}
    elif not best.exists():
        raise PoseliveError(f"{best} does not exist: nothing validated yet to ship")
    else:
        blob = read_checkpoint(best)
        model = model_from_checkpoint(blob, best)
        extra = {"step": blob.get("step")}
    out = models / f"{config_name}.pt"
    save_checkpoint(out, model, extra, half=True)
    # The ONNX twin is exported from the float16-rounded weights the .pt holds, so both give the same output.
    onnx = export_onnx(load_model(out), out.with_suffix(".onnx"), source_sha256=file_sha256(out))
    written = [out, onnx]
    if last.exists():
        (models / "checkpoints").mkdir(parents=True, exist_ok=True)
        state = models / "checkpoints" / f"{config_name}-last.pt"
        shutil.copyfile(last, state)
        written.append(state)
    return written
