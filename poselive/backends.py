"""Where the network runs: torch CPU, torch CUDA fp16 or ONNX Runtime, behind one small interface.

Every backend takes the normalised network input of `transforms.normalize_bgr`, float32 (N, 3, H, W), and
returns float32 heatmaps (N, C, ceil(H/4), ceil(W/4)) in heatmap px. Any H, W runs (the network pads
internally); nothing outside this file needs to know which backend it holds.

ONNX Runtime needs only the `.onnx` file: it carries the network's config, keypoint schema and model name as
ONNX metadata, so inference on it never reads the `.pt` weights and never imports torch. torch is imported
inside the torch backends and the export alone (the `train` / `cuda` extras); onnxruntime inside its backend.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from poselive.errors import INSTALL_TORCH, PoseliveError, WeightsError
from poselive.nets.configs import NetConfig
from poselive.schemas import schema_by_name

if TYPE_CHECKING:
    import torch

    from poselive.nets.hourglass import StackedHourglass

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "onnx", "cpu")
ONNX_OPSET = 17
# Part of the ONNX cache key: bump it when export_onnx changes what it writes, so stale exports are not reused.
EXPORT_VERSION = "2"
META_CONFIG = "poselive_config"        # ONNX metadata: the NetConfig as JSON
META_SCHEMA = "poselive_schema"        # ONNX metadata: the keypoint schema as JSON (name, keypoint names, ...)
META_MODEL = "poselive_model"          # ONNX metadata: the model's name (body-lite, ...)
META_SOURCE_HASH = "poselive_weights_sha256"  # ONNX metadata: hash of the .pt it was exported from


class Backend(Protocol):
    """name: 'torch-cpu', 'cuda-fp16' or 'onnxruntime'; config: the network's NetConfig (None only for an
    ONNX file that does not carry one)."""
    name: str
    config: NetConfig | None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) normalised input -> float32 heatmaps (N, C, ceil(H/4), ceil(W/4))."""
        ...


def _as_input(batch: np.ndarray) -> np.ndarray:
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"network input must be (N, 3, H, W), got shape {batch.shape}")
    return batch


def _torch():
    """The torch module, or None when it is not installed (a runtime-only install)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _require_torch(what: str):
    torch = _torch()
    if torch is None:
        raise PoseliveError(f"{what} needs torch, which is not installed; {INSTALL_TORCH}")
    return torch


# --------------------------------------------------------------------------------------------- torch CPU
class TorchCPUBackend:
    """float32 eval-mode torch on the CPU. Uses torch's global thread count (torch.set_num_threads)."""
    name = "torch-cpu"

    def __init__(self, model: StackedHourglass):
        _require_torch("device 'cpu' (torch on the CPU)")
        # A copy, so putting it in eval mode never changes a model someone is still training.
        self.model = copy.deepcopy(model).float().cpu().eval()
        self.config = model.cfg

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch
        with torch.inference_mode():
            # The network crops its padded output, a strided view: hand back a plain contiguous array.
            return np.ascontiguousarray(self.model(torch.from_numpy(_as_input(batch))).numpy())


# -------------------------------------------------------------------------------------------- torch CUDA
class TorchCUDABackend:
    """float16 weights, channels_last, cudnn autotuning; CUDA graphs for shapes seen repeatedly.

    A live pipeline feeds the same crop size and (mostly) the same batch size every frame, where launching
    ~200 small kernels one by one costs more than running them; a captured graph replays them in one launch.
    A shape is captured after `graph_after` plain runs (cudnn.benchmark has picked its kernels by then), and at
    most `max_graphs` shapes are kept, so one-off sizes never pay for a capture.
    """
    name = "cuda-fp16"

    def __init__(self, model: StackedHourglass, device: str = "cuda", cuda_graphs: bool = True,
                 graph_after: int = 2, max_graphs: int = 8):
        torch = _require_torch("device 'cuda'")
        if not torch.cuda.is_available():
            raise PoseliveError("device 'cuda' was asked for, but torch sees no CUDA GPU; "
                                "use --device auto, onnx or cpu")
        torch.backends.cudnn.benchmark = True
        self.device = torch.device(device)
        self.model = (copy.deepcopy(model).eval().half()
                      .to(self.device, memory_format=torch.channels_last))
        self.config = model.cfg
        self.cuda_graphs = cuda_graphs
        self.graph_after = graph_after
        self.max_graphs = max_graphs
        self._seen: Counter = Counter()
        self._graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}

    def _capture(self, x: torch.Tensor):
        import torch
        static_in = x.clone()
        # Warm-up on a side stream is what torch.cuda.graph requires before capture.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.model(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return static_in, static_out, graph

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cuda_graphs:
            return self.model(x)
        key = tuple(x.shape)
        entry = self._graphs.get(key)
        if entry is None and self._seen[key] >= self.graph_after and len(self._graphs) < self.max_graphs:
            try:
                entry = self._graphs[key] = self._capture(x)
            except RuntimeError as e:  # capture is an optimisation: run without it rather than fail
                log.warning("CUDA graph capture failed (%s); running without CUDA graphs", str(e).splitlines()[0])
                self.cuda_graphs = False
                return self.model(x)
        if entry is None:
            self._seen[key] += 1
            return self.model(x)
        static_in, static_out, graph = entry
        static_in.copy_(x)
        graph.replay()
        return static_out

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch
        with torch.inference_mode():
            x = torch.from_numpy(_as_input(batch)).to(self.device)
            x = x.half().contiguous(memory_format=torch.channels_last)
            # .float().cpu() copies out of the graph's static output before the next replay overwrites it.
            return self._forward(x).float().contiguous().cpu().numpy()


# ------------------------------------------------------------------------------------------ ONNX Runtime
def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise PoseliveError("ONNX Runtime is not installed; `pip install onnxruntime`, "
                            "or use --device cpu") from None
    return onnxruntime


def ort_session(onnx_path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session for the file, set up as every poselive network runs (threads: intra-op
    threads; None: one per physical core); WeightsError, one line, when the file cannot be loaded."""
    ort = _import_onnxruntime()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1  # the graph is one chain; parallelism is inside each op
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The live pipeline takes turns between several sessions (detector, body, face). By default each session's
    # idle threads spin for a while after a run, and on a 2-core machine they took the cores from the next
    # session's run: `run --task body,face` on the close-up clip took 1.78x the body-only time with spinning,
    # 1.62x without (median of 4 runs each, taking turns, 2026-12-03).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for missing and malformed files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"cannot load ONNX model {onnx_path}: {first}") from None


class OnnxRuntimeBackend:
    """An exported network on ONNX Runtime's CPUExecutionProvider.

    threads: intra-op threads (None: ONNX Runtime's default, one per physical core). config: the network's
    NetConfig; read from the file's metadata when not given (files written by export_onnx carry it).
    metadata: the file's metadata (META_* keys).
    """
    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None, config: NetConfig | None = None):
        self.path = Path(onnx_path)
        self.session = ort_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        channels = self.session.get_outputs()[0].shape[1]
        self.config = check_onnx_fits(self.path, config_from_metadata(self.metadata, self.path),
                                      channels if isinstance(channels, int) else None, config)

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: _as_input(batch)})[0]
        if self.config is not None and out.shape[1] != self.config.num_outputs:  # a file without a fixed count
            check_onnx_fits(self.path, {}, out.shape[1], self.config)
        return np.asarray(out, dtype=np.float32)


def config_from_metadata(metadata: dict[str, str], path: Path) -> NetConfig | None:
    """The NetConfig an ONNX file's metadata carries (None when it carries none); WeightsError when the file was
    made for keypoints this version of poselive names differently."""
    if META_CONFIG not in metadata:
        return None
    try:
        cfg = NetConfig.from_dict(json.loads(metadata[META_CONFIG]))
        schema = schema_by_name(cfg.schema)
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path} carries a config this version of poselive cannot read ({e})") from None
    if META_SCHEMA in metadata:
        names = json.loads(metadata[META_SCHEMA]).get("keypoints")
        if names is not None and tuple(names) != schema.keypoints:
            raise WeightsError(f"{path} predicts other {cfg.schema} keypoints than this version of poselive "
                               "knows; update poselive or use weights made for it")
    return cfg


def check_onnx_fits(path: Path, own: NetConfig | None, channels: int | None, config: NetConfig | None
                    ) -> NetConfig | None:
    """The config an ONNX file runs under, checked against what was asked for. own: the config its metadata
    carries (config_from_metadata); channels: its output's channel count, when fixed; config: the network asked
    for (from the .pt beside it), or None to use the file's own.

    A file whose own config names another network or schema, or whose output has another channel count than
    the asked network's heatmaps (face-lite's 68 renamed body-lite.onnx would give 17 of them, and scores of
    0), raises WeightsError: run silently, it would give nonsense."""
    if config is not None and own is not None and (own.name, own.schema) != (config.name, config.schema):
        raise WeightsError(f"{path} holds the {own.name} network ({own.schema}), not {config.name} "
                           f"({config.schema}); delete it, or export the right one with `poselive export-onnx`")
    config = config or own
    if config is not None and channels is not None and channels != config.num_outputs:
        raise WeightsError(f"{path} gives {channels} heatmaps, but {config.name} ({config.schema}) has "
                           f"{config.num_outputs}; it is another network: delete it, or export the right one with "
                           f"`poselive export-onnx`")
    return config


# ------------------------------------------------------------------------------------------------ export
def export_onnx(model: StackedHourglass, path: str | os.PathLike, source_sha256: str | None = None,
                model_name: str | None = None) -> Path:
    """Write `model` as ONNX with dynamic batch, height and width; input 'input', output 'heatmaps'.

    Uses the TorchScript exporter (`dynamo=False`): it records the network's pad-to-a-multiple and crop-back
    arithmetic on the input's shape as ONNX Shape/Mod/Slice ops, so any H, W runs and matches torch. The
    torch.export-based exporter (torch 2.13) cannot prove the padded sizes divide evenly through the pooling
    and upsampling of the hourglass and fails on dynamic H, W ("Eq(... % ..., 0) cannot be solved").
    The file's metadata carries what inference needs without torch (write_onnx_metadata): the NetConfig, the
    keypoint schema, the model name (default: the file's stem) and the hash of the source weights when given.
    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    torch = _require_torch("exporting to ONNX")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().cpu().eval()
    w, h = model.cfg.input_wh
    dummy = torch.zeros(1, 3, h, w)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            # The deprecation notice of the TorchScript exporter, and tracer notes on shape arithmetic that
            # the dynamic axes make correct.
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["input"], output_names=["heatmaps"], do_constant_folding=True,
                              dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                            "heatmaps": {0: "batch", 2: "heatmap_height", 3: "heatmap_width"}})
        write_onnx_metadata(tmp, model.cfg, model_name or path.stem, source_sha256)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_metadata(cfg: NetConfig, model_name: str, source_sha256: str | None = None) -> dict[str, str]:
    """The poselive metadata of an ONNX file (META_* keys -> strings)."""
    schema = schema_by_name(cfg.schema)
    meta = {META_CONFIG: json.dumps(cfg.to_dict()), META_MODEL: model_name,
            META_SCHEMA: json.dumps({"name": schema.name, "keypoints": list(schema.keypoints),
                                     "skeleton": [list(e) for e in schema.skeleton],
                                     "flip_pairs": [list(p) for p in schema.flip_pairs]})}
    if source_sha256:
        meta[META_SOURCE_HASH] = source_sha256
    return meta


def write_onnx_metadata(path: str | os.PathLike, cfg: NetConfig, model_name: str,
                        source_sha256: str | None = None) -> None:
    """Set the poselive metadata of the ONNX file `path` in place (onnx_metadata; earlier poselive keys are
    replaced, others kept). The graph and its weights are written back unchanged."""
    try:
        import onnx
    except ImportError:  # the file still runs, with the config given by whoever exported it
        log.warning("the onnx package is not installed, so %s is written without poselive metadata and cannot be "
                    "run without its .pt; %s", path, INSTALL_TORCH)
        return
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith("poselive_")]
    del proto.metadata_props[:]
    for key, value in kept + list(onnx_metadata(cfg, model_name, source_sha256).items()):
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_sha256(model: StackedHourglass) -> str:
    """Hash of a model's config and weights (float32), for caching exports of in-memory models."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_cache_dir() -> Path:
    """$POSELIVE_CACHE, else $XDG_CACHE_HOME/poselive, else ~/.cache/poselive."""
    if os.environ.get("POSELIVE_CACHE"):
        return Path(os.environ["POSELIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "poselive"


def _cached_export(stem: str, digest: str) -> Path:
    key = hashlib.sha256(f"{digest}:{EXPORT_VERSION}:{ONNX_OPSET}".encode()).hexdigest()[:16]
    return onnx_cache_dir() / f"{stem}-{key}.onnx"


def _export_to_cache(load_model, stem: str, digest: str, source_sha256: str | None) -> Path:
    """The cached export of the network `load_model()` builds, exported now if it is not cached yet."""
    cached = _cached_export(stem, digest)
    if cached.is_file():
        return cached
    log.info("exporting %s to ONNX: %s", stem, cached)
    model = load_model()
    try:
        export_onnx(model, cached, source_sha256=source_sha256, model_name=stem)
    except PoseliveError:
        raise
    except Exception as e:  # torch's exporter and the file system fail in many ways; say which, briefly
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise PoseliveError(f"cannot export {stem} to ONNX at {cached} ({type(e).__name__}: {first}); "
                            "use --device cpu") from None
    return cached


def onnx_for(model: StackedHourglass) -> Path:
    """The ONNX file of a network in memory: an export cached in onnx_cache_dir(), keyed by its weights' hash."""
    return _export_to_cache(lambda: model, model.cfg.name, model_sha256(model), None)


def _onnx_backend_for_weights(weights: Path, threads: int | None) -> OnnxRuntimeBackend:
    """ONNX Runtime for a weights file. A `.onnx` file runs as it is. For a `.pt`, the `.onnx` shipped beside it
    runs when it was exported from these weights (its metadata says so, or says nothing) and carries its
    config; else an export cached in onnx_cache_dir(), keyed by the weights' hash, which is made (with torch)
    the first time. Only that first export reads the `.pt` as weights."""
    if weights.suffix == ".onnx":
        backend = OnnxRuntimeBackend(weights, threads)
        if backend.config is None:
            raise WeightsError(f"{weights} carries no poselive config in its metadata; export it with "
                               "`poselive export-onnx WEIGHTS.pt OUT.onnx`")
        return backend
    if not weights.is_file():
        raise WeightsError(f"weights file {weights} does not exist")
    digest = file_sha256(weights)
    shipped = weights.with_suffix(".onnx")
    if shipped.is_file():
        backend = OnnxRuntimeBackend(shipped, threads)
        source = backend.metadata.get(META_SOURCE_HASH)
        if source is None and _torch() is not None:
            # Nothing says which weights it was exported from: it runs only if it is the network the .pt holds
            # (check_onnx_fits refuses another one: face-lite's file renamed body-lite.onnx gave every score 0).
            from poselive.checkpoint import load_model
            return OnnxRuntimeBackend(shipped, threads, config=load_model(weights).cfg)
        if source not in (None, digest):
            log.warning("%s was exported from other weights than %s; exporting again", shipped, weights)
        elif backend.config is not None:
            return backend
    cached = _cached_export(weights.stem, digest)
    if not cached.is_file() and _torch() is None:
        raise WeightsError(f"{weights} has no up-to-date ONNX file beside it ({shipped.name}), and making one "
                           f"needs torch, which is not installed; {INSTALL_TORCH}")

    def load():
        from poselive.checkpoint import load_model
        return load_model(weights)
    backend = OnnxRuntimeBackend(_export_to_cache(load, weights.stem, digest, digest), threads)
    if backend.config is None:  # exported where the onnx package (which writes the metadata) is missing
        backend.config = load().cfg
    return backend


def _torch_weights(weights: Path) -> Path:
    """The `.pt` weights the torch backends load, for a `.pt` or `.onnx` path."""
    if weights.suffix != ".onnx":
        return weights
    pt = weights.with_suffix(".pt")
    if not pt.is_file():
        raise WeightsError(f"{weights} is an ONNX file and the torch backends need the .pt weights, which are not "
                           "beside it; use --device onnx")
    return pt


# ----------------------------------------------------------------------------------------------- factory
def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _cuda_available() -> bool:
    torch = _torch()
    return torch is not None and torch.cuda.is_available()


def make_backend(model_or_weights: StackedHourglass | str | os.PathLike, device: str = "auto",
                 threads: int | None = None) -> Backend:
    """The fastest backend here for a network in memory or a weights file (.pt, or .onnx).

    device: 'auto' (CUDA fp16 if torch is installed and sees a GPU, else ONNX Runtime if installed, else torch
    CPU), or 'cuda', 'onnx', 'cpu' to force one; raises PoseliveError if the forced one is unavailable.
    threads: ONNX Runtime intra-op threads (None: its default). ONNX Runtime on a weights file needs no torch
    (see _onnx_backend_for_weights).
    """
    if device not in DEVICES:
        raise PoseliveError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    in_memory = not isinstance(model_or_weights, (str, os.PathLike))
    weights = None if in_memory else Path(model_or_weights)

    def onnx_backend() -> OnnxRuntimeBackend:
        if in_memory:
            return OnnxRuntimeBackend(onnx_for(model_or_weights), threads=threads, config=model_or_weights.cfg)
        return _onnx_backend_for_weights(weights, threads)

    def torch_model():
        if in_memory:
            return model_or_weights
        _require_torch(f"device '{device}'")
        from poselive.checkpoint import load_model
        return load_model(_torch_weights(weights))

    if device == "auto":
        if _cuda_available():
            return TorchCUDABackend(torch_model())
        if onnxruntime_available():
            try:
                return onnx_backend()
            except PoseliveError as e:  # auto means "the best that works": torch may still run the model
                if _torch() is None:
                    raise
                log.warning("%s; using torch on the CPU instead", e)
        device = "cpu"
        return TorchCPUBackend(torch_model())
    if device == "cuda":
        return TorchCUDABackend(torch_model())
    if device == "onnx":
        _import_onnxruntime()
        return onnx_backend()
    return TorchCPUBackend(torch_model())


# ------------------------------------------------------------------------------------------------ command
def export_command(args) -> int:
    """`poselive export-onnx WEIGHTS OUT`: export, then check ONNX Runtime against torch at the model's input
    size and at an odd size. With --metadata-only, OUT exists and only its metadata is (re)written from WEIGHTS
    (its graph and weights stay as they are), then checked the same way."""
    from poselive.checkpoint import load_model
    weights = Path(args.weights)
    model = load_model(weights)
    out = Path(args.out)
    if args.metadata_only:
        if not out.is_file():
            raise PoseliveError(f"cannot rewrite the metadata of {out}: no such file")
        write_onnx_metadata(out, model.cfg, out.stem, file_sha256(weights))
    else:
        export_onnx(model, out, source_sha256=file_sha256(weights))
    size_mb = out.stat().st_size / 1e6
    if not onnxruntime_available():
        print(f"wrote {out} ({size_mb:.1f} MB); onnxruntime is not installed, so it was not checked")
        return 0
    ort_backend, torch_backend = OnnxRuntimeBackend(out), TorchCPUBackend(model)
    w, h = model.cfg.input_wh
    rng = np.random.default_rng(0)
    checks = []
    for hw in ((h, w), (h + 13, w - 7)):
        x = rng.standard_normal((2, 3, *hw)).astype(np.float32)
        diff = float(np.abs(ort_backend.run(x) - torch_backend.run(x)).max())
        checks.append(f"{hw[0]}x{hw[1]}: {diff:.1e}")
        if not diff < 1e-3:
            raise PoseliveError(f"the export {out} disagrees with torch by {diff:.2g} at {hw[0]}x{hw[1]} (H x W); "
                                "please report this with your torch and onnxruntime versions")
    print(f"wrote {out} ({size_mb:.1f} MB); max |ONNX Runtime - torch| at {', '.join(checks)} (H x W)")
    return 0
