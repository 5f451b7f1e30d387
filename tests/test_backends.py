"""Every backend gives the same heatmaps for the same input; the ONNX export keeps dynamic batch, height and
width and carries the config, schema and model name; make_backend picks and caches sensibly, runs the .onnx
beside a .pt without torch, and says clearly when a forced device is missing."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")

from poselive import backends  # noqa: E402
from poselive.backends import (OnnxRuntimeBackend, TorchCPUBackend, export_onnx, make_backend,  # noqa: E402
                               onnxruntime_available)
from poselive.checkpoint import save_checkpoint  # noqa: E402
from poselive.cli import main  # noqa: E402
from poselive.errors import PoseliveError, WeightsError  # noqa: E402
from poselive.nets.configs import NetConfig, config_by_name  # noqa: E402
from poselive.nets.hourglass import StackedHourglass  # noqa: E402

needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime is not installed")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")

CFG = config_by_name("body-lite")
H, W = CFG.input_wh[1], CFG.input_wh[0]
SIZES = [(H, W), (97, 203)]  # the config's input size, and an odd one the export never saw
# Where only the file handling matters, a tiny network keeps the exports quick.
TINY = NetConfig("tiny", "coco17", (48, 64), stacks=2, depth=2, width=16, stem_width=8, block="bottleneck")
TINY_FACE = NetConfig("tiny-face", "face68", (48, 64), stacks=1, depth=2, width=16, stem_width=8, block="bottleneck")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSELIVE_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return StackedHourglass(CFG).eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return StackedHourglass(TINY).eval()


@pytest.fixture(scope="module")
def onnx_path(model):
    return backends.onnx_for(model)  # exported once into the module's cache, shared with make_backend


def random_input(n, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, h, w)).astype(np.float32)


def test_torch_cpu_backend_gives_float32_heatmaps_and_leaves_the_model_alone(tiny):
    tiny.train()
    try:
        backend = TorchCPUBackend(tiny)
        assert tiny.training  # the backend works on its own copy
    finally:
        tiny.eval()
    out = backend.run(random_input(2, 97, 203))
    assert out.dtype == np.float32 and out.shape == (2, 17, 25, 51)
    assert backend.name == "torch-cpu" and backend.config == TINY


@pytest.mark.slow
@needs_ort
@pytest.mark.parametrize("hw", SIZES)
def test_onnxruntime_matches_torch(model, onnx_path, hw):
    x = random_input(2, *hw)
    ref = TorchCPUBackend(model).run(x)
    out = OnnxRuntimeBackend(onnx_path, threads=2).run(x)
    assert out.shape == ref.shape == (2, 17, -(-hw[0] // 4), -(-hw[1] // 4))
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-3


@pytest.mark.slow
@needs_ort
@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 3, 33, 17), (5, 3, 64, 48)])
def test_onnx_export_has_dynamic_batch_height_and_width(model, onnx_path, shape):
    backend = OnnxRuntimeBackend(onnx_path)
    n, _, h, w = shape
    out = backend.run(random_input(*[n, h, w]))
    assert out.shape == (n, 17, -(-h // 4), -(-w // 4))
    assert np.abs(out - TorchCPUBackend(model).run(random_input(n, h, w))).max() < 1e-3


@pytest.mark.slow
@needs_ort
def test_onnx_file_carries_its_config_schema_and_name(onnx_path):
    backend = OnnxRuntimeBackend(onnx_path)
    assert backend.config == CFG and backend.metadata[backends.META_MODEL] == "body-lite"
    schema = json.loads(backend.metadata[backends.META_SCHEMA])
    assert schema["name"] == "coco17" and schema["keypoints"][:2] == ["nose", "left_eye"]


@pytest.mark.slow
@needs_ort
def test_without_torch_the_onnx_beside_the_weights_runs_and_the_pt_is_not_loaded(tiny, tmp_path, monkeypatch):
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, tiny)
    export_onnx(tiny, tmp_path / "tiny.onnx", source_sha256=backends.file_sha256(weights))
    monkeypatch.setattr(backends, "_torch", lambda: None)

    def no_loading(*args, **kwargs):
        raise AssertionError("the .pt was loaded as weights")
    monkeypatch.setattr("poselive.checkpoint.load_model", no_loading)
    for spec in (weights, tmp_path / "tiny.onnx"):
        backend = make_backend(spec)
        assert backend.name == "onnxruntime" and backend.config == TINY
    with pytest.raises(PoseliveError, match="device 'cpu' needs torch, which is not installed; install it"):
        make_backend(weights, "cpu")
    (tmp_path / "tiny.onnx").unlink()  # nothing to run without exporting, and exporting needs torch
    with pytest.raises(WeightsError, match=r"no up-to-date ONNX file beside it \(tiny.onnx\).*poselive\[train\]"):
        make_backend(weights, "onnx")


@pytest.mark.slow
@needs_ort
def test_an_onnx_file_without_its_weights_runs_on_onnx_only(tiny, tmp_path):
    path = export_onnx(tiny, tmp_path / "alone.onnx")
    assert make_backend(path, "onnx").config == TINY
    with pytest.raises(WeightsError, match="torch backends need the .pt weights"):
        make_backend(path, "cpu")


@pytest.mark.slow
@needs_ort
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's notice
def test_metadata_only_rewrites_the_metadata_and_leaves_the_graph(tiny, tmp_path, capsys):
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, tiny)
    out = tmp_path / "w.onnx"
    torch.onnx.export(tiny.float().eval(), (torch.zeros(1, 3, 64, 48),), str(out), dynamo=False,
                      opset_version=backends.ONNX_OPSET, input_names=["input"], output_names=["heatmaps"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}})
    graph = onnx.load(str(out)).graph.SerializeToString()
    assert OnnxRuntimeBackend(out).config is None  # a bare export carries nothing of ours
    assert main(["export-onnx", str(weights), str(out), "--metadata-only"]) == 0
    assert onnx.load(str(out)).graph.SerializeToString() == graph
    backend = OnnxRuntimeBackend(out)
    assert backend.config == TINY and backend.metadata[backends.META_MODEL] == "w"
    assert backend.metadata[backends.META_SOURCE_HASH] == backends.file_sha256(weights)
    assert "max |ONNX Runtime - torch|" in capsys.readouterr().out


@needs_cuda
@pytest.mark.parametrize("hw", SIZES)
def test_cuda_fp16_matches_torch_cpu(model, hw):
    x = random_input(2, *hw)
    ref = TorchCPUBackend(model).run(x)
    backend = backends.TorchCUDABackend(model)
    for _ in range(4):  # past the point where the shape is captured as a CUDA graph
        out = backend.run(x)
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert np.abs(out - ref).max() < 2e-2
    other = random_input(2, *hw, seed=1)  # a replayed graph must see the new input
    assert np.abs(backend.run(other) - TorchCPUBackend(model).run(other)).max() < 2e-2


@pytest.mark.slow
def test_every_available_backend_agrees_on_one_input(model):
    x = random_input(1, H, W)
    ref = TorchCPUBackend(model).run(x)
    devices = ["cpu"] + (["onnx"] if onnxruntime_available() else []) + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        backend = make_backend(model, device)
        tol = 2e-2 if backend.name == "cuda-fp16" else 1e-3
        assert np.abs(backend.run(x) - ref).max() < tol, backend.name


@pytest.mark.slow
def test_auto_picks_the_fastest_backend_here(tiny, tmp_path):
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, tiny)
    backend = make_backend(weights)
    expected = "cuda-fp16" if torch.cuda.is_available() else "onnxruntime" if onnxruntime_available() else "torch-cpu"
    assert backend.name == expected
    assert backend.config == TINY
    x = random_input(1, 64, 48)
    tol = 2e-2 if backend.name == "cuda-fp16" else 1e-3
    assert np.abs(backend.run(x) - TorchCPUBackend(tiny).run(x)).max() < tol


@pytest.mark.slow
@needs_ort
def test_onnx_export_is_cached_by_the_weights_hash(tiny, tmp_path, private_cache):
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, tiny)
    first = make_backend(weights, "onnx")
    assert first.path.parent == private_cache
    mtime = first.path.stat().st_mtime_ns
    second = make_backend(weights, "onnx")
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime  # reused, not re-exported
    torch.manual_seed(5)
    save_checkpoint(weights, StackedHourglass(TINY))  # new weights, same file name: a new export
    assert make_backend(weights, "onnx").path != first.path


@pytest.mark.slow
@needs_ort
def test_an_onnx_file_shipped_beside_the_weights_is_used(tiny, tmp_path):
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, tiny)
    shipped = export_onnx(tiny, tmp_path / "tiny.onnx", source_sha256=backends.file_sha256(weights))
    assert make_backend(weights, "onnx").path == shipped


@pytest.mark.slow
@needs_ort
def test_a_stale_shipped_onnx_file_is_not_used(tiny, tmp_path):
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, tiny)
    stale = export_onnx(tiny, tmp_path / "tiny.onnx", source_sha256="0" * 64)
    assert make_backend(weights, "onnx").path != stale


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory):
    """A face network's ONNX export (68 heatmaps), made without the hash of any weights."""
    torch.manual_seed(1)
    return export_onnx(StackedHourglass(TINY_FACE).eval(), tmp_path_factory.mktemp("foreign") / "face.onnx")


@pytest.mark.faults
@needs_ort
@pytest.mark.parametrize("metadata", ["its own config", "none"])
def test_a_foreign_onnx_file_beside_the_weights_is_refused(tiny, foreign_onnx, tmp_path, metadata, caplog):
    """face-lite's ONNX renamed body-lite.onnx once ran silently, every score 0: a file made for another network
    (by the config it carries, or without one by its 68 heatmaps against the 17 asked for) is refused, and
    device 'auto' runs torch instead."""
    import onnx
    weights = tmp_path / "body.pt"
    save_checkpoint(weights, tiny)
    proto = onnx.load(str(foreign_onnx))
    if metadata == "none":
        del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "body.onnx"))
    with pytest.raises(WeightsError, match=r"body.onnx (holds the tiny-face network \(face68\), not tiny "
                                           r"\(coco17\)|gives 68 heatmaps, but tiny \(coco17\) has 17)"):
        make_backend(weights, "onnx")
    if not torch.cuda.is_available():
        assert make_backend(weights, "auto").name == "torch-cpu"
        assert "body.onnx" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_forcing_cuda_without_a_gpu_says_so(tiny):
    with pytest.raises(PoseliveError, match="no CUDA GPU") as err:
        make_backend(tiny, "cuda")
    assert "\n" not in str(err.value)


def test_forcing_onnx_without_onnxruntime_says_so(tiny, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(PoseliveError, match="pip install onnxruntime"):
        make_backend(tiny, "onnx")
    assert make_backend(tiny).name in ("torch-cpu", "cuda-fp16")  # auto falls back instead


def test_unknown_device_is_refused(tiny):
    with pytest.raises(PoseliveError, match="unknown device"):
        make_backend(tiny, "tpu")


def test_wrong_input_shape_is_refused(tiny):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        TorchCPUBackend(tiny).run(np.zeros((3, 32, 32), np.float32))


@pytest.mark.slow
@needs_ort
def test_export_onnx_command_writes_a_checked_file(tiny, tmp_path, capsys):
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, tiny)
    out = tmp_path / "out" / "w.onnx"
    assert main(["export-onnx", str(weights), str(out)]) == 0
    assert out.is_file()
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}") and "max |ONNX Runtime - torch|" in printed
    assert OnnxRuntimeBackend(out).metadata[backends.META_SOURCE_HASH] == backends.file_sha256(weights)


def test_heatmaps_come_back_as_plain_contiguous_arrays(tiny):
    out = TorchCPUBackend(tiny).run(random_input(1, 61, 45))
    assert out.flags.c_contiguous


@needs_ort
def test_a_failed_export_is_one_sentence_when_forced_and_falls_back_on_auto(tiny, monkeypatch):
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter exploded\nwith details")
    monkeypatch.setattr(backends, "export_onnx", broken_export)
    torch.manual_seed(3)
    fresh = StackedHourglass(TINY).eval()  # not in the cache yet
    with pytest.raises(PoseliveError, match="cannot export tiny to ONNX") as err:
        make_backend(fresh, "onnx")
    assert "\n" not in str(err.value)
    if not torch.cuda.is_available():
        assert make_backend(fresh).name == "torch-cpu"
