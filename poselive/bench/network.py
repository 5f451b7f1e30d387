"""The network benchmarks of `poselive bench`: every stage on every backend available here.

Per backend, per crop: preprocess (affine crop of one person box out of a 640x480 frame + normalise), network,
decode (heatmaps -> keypoints in image px), and their total, as median and 90th percentile over warm runs;
then crops/s at batch 1 and 8; the model's size; and the compiled decoder against its numpy reference.
Timings use time.perf_counter; torch gets one thread per core, ONNX Runtime as many intra-op threads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from poselive import codec
from poselive.checkpoint import load_model
from poselive.errors import PoseliveError
from poselive.nets.configs import CONFIGS, NetConfig
from poselive.nets.hourglass import StackedHourglass, count_params
from poselive.bench.clock import percentiles_ms, thread_time_calls, time_calls
from poselive.tables import format_table
from poselive.keypoint_model import KeypointModel
from poselive.timing import StageTimer
from poselive.weights import models_dir

FRAME_WH = (640, 480)
# Person boxes (x, y, w, h) in frame px for the batch-8 runs; the first is the batch-1 box.
BOXES_XYWH = [(250, 60, 140, 380), (40, 120, 110, 300), (470, 90, 120, 350), (180, 200, 90, 260),
              (330, 20, 150, 440), (10, 10, 200, 460), (560, 150, 70, 200), (120, 300, 160, 170)]
DECODE_SHAPES = [(1, 17, 64, 48), (8, 17, 64, 48)]


# ------------------------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class ModelStats:
    """params: parameter count; gflops: forward FLOPs at input_wh, batch 1, in 1e9 (a multiply-add is 2)."""
    params: int
    gflops: float
    input_wh: tuple[int, int]


def model_stats(cfg: NetConfig, input_wh: tuple[int, int] | None = None) -> ModelStats:
    """Parameter count and GFLOPs of a config at `input_wh` (W, H; default its own input size).

    Built and run on the meta device: shapes only, no memory or compute, so body-full costs no more than
    body-lite."""
    from torch.utils.flop_counter import FlopCounterMode

    w, h = input_wh or cfg.input_wh
    with torch.device("meta"):
        model = StackedHourglass(cfg).eval()
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, h, w))
    return ModelStats(count_params(model), counter.get_total_flops() / 1e9, (w, h))


def resolve_model(spec: str) -> tuple[StackedHourglass, str]:
    """A config name (shipped weights <models dir>/<name>.pt, random if not there yet) or a weights file.
    Returns the model and a phrase saying where its weights came from."""
    if spec in CONFIGS:
        path = models_dir() / f"{spec}.pt"
        if path.is_file():
            return load_model(path), f"weights {path}"
        torch.manual_seed(0)
        return StackedHourglass(CONFIGS[spec]).eval(), f"RANDOM weights ({path} does not exist yet)"
    if Path(spec).suffix == ".pt" or Path(spec).exists():
        return load_model(spec), f"weights {spec}"
    raise PoseliveError(f"unknown model {spec!r}; give a config name ({', '.join(CONFIGS)}) or a weights file")


def available_backends(model: StackedHourglass, threads: int) -> list:
    """Every backend this machine can run, in the order the tables list them."""
    from poselive import backends

    found = [backends.TorchCPUBackend(model)]
    if backends.onnxruntime_available():
        found.append(backends.make_backend(model, "onnx", threads=threads))
    if torch.cuda.is_available():
        found.append(backends.make_backend(model, "cuda"))
    return found


# ----------------------------------------------------------------------------------------------- sections
def stage_rows(backend, cfg: NetConfig, frame: np.ndarray, boxes: list, repeats: int, warmup: int
               ) -> list[list[float]]:
    """Per-iteration seconds of preprocess, network, decode for one batch of crops from `frame`, timed inside
    `KeypointModel.estimate_crops` (the path the pipeline takes)."""
    model = KeypointModel.from_backend(backend)
    boxes_xywh = np.asarray(boxes, np.float64)

    def once() -> list[float]:
        timer = StageTimer()
        model.estimate_crops(frame, boxes_xywh, timer=timer)
        return [timer.ms[s] / 1000.0 for s in ("preprocess", "network", "decode")]

    for _ in range(warmup):
        once()
    return [once() for _ in range(repeats)]


def backend_tables(model: StackedHourglass, backends: list, repeats: int) -> str:
    cfg = model.cfg
    frame = np.random.default_rng(0).integers(0, 256, (FRAME_WH[1], FRAME_WH[0], 3), dtype=np.uint8)
    warmup = max(3, repeats // 10)
    per_stage, throughput = [], []
    for backend in backends:
        for batch in (1, 8):
            times = np.asarray(stage_rows(backend, cfg, frame, BOXES_XYWH[:batch], repeats, warmup))
            total = times.sum(1)
            if batch == 1:
                for name, col in zip(("preprocess", "network", "decode", "total"), (*times.T, total)):
                    per_stage.append([backend.name, name, *percentiles_ms(list(col))])
            med, p90 = percentiles_ms(list(total))
            throughput.append([backend.name, batch, med, p90, med / batch, 1e3 * batch / med])
    w, h = cfg.input_wh
    return "\n\n".join([
        format_table(["backend", "stage", "median ms", "p90 ms"], per_stage,
                     f"Per crop, batch 1, {h}x{w} (H x W) crop from a {FRAME_WH[0]}x{FRAME_WH[1]} frame"),
        format_table(["backend", "batch", "median ms", "p90 ms", "ms/crop", "crops/s"], throughput,
                     "Throughput, preprocess + network + decode per batch"),
    ])


def single_thread_table(model: StackedHourglass, repeats: int) -> str:
    """Network compute per crop on one thread, as CPU time: wall-clock tables are inflated when other processes
    share the cores, this one much less (it is about the wall time on an idle core)."""
    from poselive import backends

    w, h = model.cfg.input_wh
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    runners = [backends.TorchCPUBackend(model)]
    if backends.onnxruntime_available():
        # One intra-op thread: ONNX Runtime then runs on the calling thread, so thread_time sees all its work.
        runners.append(backends.make_backend(model, "onnx", threads=1))
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for backend in runners:
            med, p90 = percentiles_ms(thread_time_calls(lambda: backend.run(x), repeats, max(3, repeats // 10)))
            rows.append([backend.name, med, p90])
    finally:
        torch.set_num_threads(threads)
    return format_table(["backend", "cpu ms", "p90 cpu ms"], rows,
                        f"Network on one thread, batch 1, {h}x{w}: CPU time of the calling thread "
                        "(about the wall time on an idle core)")


def stats_table(cfg: NetConfig) -> str:
    stats = model_stats(cfg)
    w, h = stats.input_wh
    return format_table(["model", "input (H x W)", "params (M)", "GFLOPs"],
                        [[cfg.name, f"{h}x{w}", stats.params / 1e6, round(stats.gflops, 3)]],
                        "Model size (FLOPs count a multiply-add as 2)")


def decode_table(repeats: int, blur_sigma: float) -> str:
    rows = []
    rng = np.random.default_rng(0)
    for shape in DECODE_SHAPES:
        n, k, h, w = shape
        # Gaussian targets at random points plus a little noise: what a trained network's output looks like.
        xy = rng.uniform([2, 2], [w - 3, h - 3], (n * k, 2))
        maps = np.stack([codec.encode_gaussian(p[None], np.ones(1, bool), (w, h), 2.0)[0][0] for p in xy])
        heatmaps = (maps + 0.02 * rng.standard_normal(maps.shape)).astype(np.float32).reshape(shape)
        label = "x".join(map(str, shape))
        ref_med, ref_p90 = percentiles_ms(time_calls(
            lambda: codec.decode_heatmaps_reference(heatmaps, blur_sigma), repeats, 3))
        if codec.IMPLEMENTATION == "cython":
            cy_med, cy_p90 = percentiles_ms(time_calls(lambda: codec.decode_heatmaps(heatmaps, blur_sigma),
                                                       repeats, 3))
            rows.append([label, cy_med, cy_p90, ref_med, ref_p90, f"{ref_med / cy_med:.1f}x"])
        else:
            rows.append([label, "not built", "-", ref_med, ref_p90, "-"])
    why = "" if codec.IMPLEMENTATION == "cython" else (
        " (POSELIVE_PURE_PYTHON is set)" if os.environ.get("POSELIVE_PURE_PYTHON") else
        " (compiled decoder not built; `pip install -e .`)")
    return format_table(["heatmaps", "cython ms", "cython p90", "numpy ms", "numpy p90", "speed-up"], rows,
                        f"Decode (DARK, blur sigma {blur_sigma:g}): compiled vs numpy reference{why}")
