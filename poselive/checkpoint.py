"""Weights I/O. A checkpoint is a plain dict of tensors and built-in types (safe for
`torch.load(weights_only=True)`) that carries its NetConfig, so the file alone rebuilds its network."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from poselive.errors import WeightsError
from poselive.nets.configs import NetConfig
from poselive.nets.hourglass import StackedHourglass

FORMAT = "poselive-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, model: StackedHourglass, extra: dict | None = None,
                    half: bool = False) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a truncated file behind.

    half: store float tensors as float16 (shipped weights; halves the file)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": state}
    if extra:
        blob.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load the raw dict; raises WeightsError with one sentence on any problem."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; models ship in the repository's models/ folder")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise WeightsError(f"cannot read weights file {path}: it is truncated or not a poselive checkpoint "
                           f"({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a poselive checkpoint (no '{FORMAT}' marker)")
    return blob


def load_model(path: str | os.PathLike, expect_schema: str | None = None) -> StackedHourglass:
    """Rebuild the network a checkpoint describes and load its weights (float32, eval mode)."""
    return model_from_checkpoint(read_checkpoint(path), path, expect_schema)


def model_from_checkpoint(blob: dict, path: str | os.PathLike, expect_schema: str | None = None
                          ) -> StackedHourglass:
    """load_model for a checkpoint already read (read_checkpoint), so a caller that also wants its other fields
    (step, ...) reads the file once; `path` names it in errors."""
    try:
        cfg = NetConfig.from_dict(blob["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path} has an unreadable config: {e}") from None
    if expect_schema and cfg.schema != expect_schema:
        raise WeightsError(f"{path} predicts {cfg.schema} keypoints, but a {expect_schema} model was asked for")
    model = StackedHourglass(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise WeightsError(f"{path} does not match the network of config {cfg.name}: {first}") from None
    return model.eval()


def average_weights(paths: list[str | os.PathLike]) -> tuple[StackedHourglass, list[int]]:
    """The mean of several saved states of one network (e.g. the tail of a schedule, where the learning rate is
    low): the network with the averaged weights and the steps averaged. Averaging the weights that training
    passes through late in a schedule smooths out the step-to-step wander of any single one (Izmailov et al.
    2018, stochastic weight averaging). Batch-norm statistics are averaged too."""
    if not paths:
        raise WeightsError("no states given to average")
    blobs = [read_checkpoint(p) for p in paths]
    configs = {str(b["config"]) for b in blobs}
    if len(configs) > 1:
        raise WeightsError("the states to average come from different networks")
    model = model_from_checkpoint(blobs[0], paths[0])
    mean = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            mean[key] = sum(b["state_dict"][key].float() for b in blobs) / len(blobs)
        else:
            mean[key] = value  # batch-norm counters: not weights
    model.load_state_dict(mean)
    return model, [int(b.get("step", -1)) for b in blobs]
