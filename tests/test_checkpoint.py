"""Weights files: a saved model comes back identical, half-precision storage loads, and every kind of bad file
is refused with one sentence (and the CLI prints it on one line, without a traceback)."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")

from poselive.checkpoint import load_model, read_checkpoint, save_checkpoint  # noqa: E402
from poselive.cli import main  # noqa: E402
from poselive.errors import WeightsError  # noqa: E402
from poselive.nets.configs import NetConfig, config_by_name  # noqa: E402
from poselive.nets.hourglass import StackedHourglass  # noqa: E402

TINY_BODY = NetConfig("tiny-body", "coco17", (48, 64), stacks=2, depth=2, width=16, stem_width=8,
                      block="bottleneck")
TINY_FACE = NetConfig("tiny-face", "face68", (64, 64), stacks=1, depth=2, width=16, stem_width=8)


def trained_looking(cfg, seed=0):
    """A model whose BatchNorm statistics are not the defaults, so a round trip that lost them would show."""
    torch.manual_seed(seed)
    model = StackedHourglass(cfg).train()
    with torch.no_grad():
        model(torch.randn(4, 3, cfg.input_wh[1], cfg.input_wh[0]))
    return model.eval()


def heatmaps(model, seed=0):
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, 61, 45)).astype(np.float32))
    with torch.inference_mode():
        return model(x)


def assert_one_line_weights_error(path, **kwargs) -> str:
    with pytest.raises(WeightsError) as err:
        load_model(path, **kwargs)
    msg = str(err.value)
    assert msg and "\n" not in msg
    assert str(path) in msg
    return msg


def test_round_trip_gives_identical_outputs(tmp_path):
    model = trained_looking(TINY_BODY)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, extra={"step": 123})
    loaded = load_model(path)
    assert loaded.cfg == TINY_BODY
    assert not loaded.training
    assert torch.equal(heatmaps(loaded), heatmaps(model))
    assert read_checkpoint(path)["step"] == 123
    assert not (tmp_path / "m.pt.tmp").exists()


def test_a_named_config_round_trips(tmp_path):
    model = StackedHourglass(config_by_name("body-lite")).eval()
    save_checkpoint(tmp_path / "b.pt", model)
    assert load_model(tmp_path / "b.pt", expect_schema="coco17").cfg == config_by_name("body-lite")


def test_half_storage_loads_as_float32(tmp_path):
    model = trained_looking(TINY_BODY)
    save_checkpoint(tmp_path / "full.pt", model)
    save_checkpoint(tmp_path / "half.pt", model, half=True)
    assert all(v.dtype != torch.float32 for v in read_checkpoint(tmp_path / "half.pt")["state_dict"].values())
    loaded = load_model(tmp_path / "half.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ref, out = heatmaps(model), heatmaps(loaded)
    assert (out - ref).abs().max() < 1e-2 * max(1.0, ref.abs().max().item())


def test_half_storage_halves_a_shipped_model(tmp_path):
    model = StackedHourglass(config_by_name("body-lite")).eval()
    save_checkpoint(tmp_path / "full.pt", model)
    save_checkpoint(tmp_path / "half.pt", model, half=True)
    assert os.path.getsize(tmp_path / "half.pt") < 0.6 * os.path.getsize(tmp_path / "full.pt")


@pytest.mark.faults
def test_missing_file(tmp_path):
    msg = assert_one_line_weights_error(tmp_path / "nope.pt")
    assert "does not exist" in msg


@pytest.mark.faults
def test_truncated_file(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint(path, trained_looking(TINY_BODY))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    assert "truncated" in assert_one_line_weights_error(path)


@pytest.mark.faults
def test_random_bytes_file(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_one_line_weights_error(path)


@pytest.mark.faults
def test_a_torch_file_that_is_not_a_poselive_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    assert "not a poselive checkpoint" in assert_one_line_weights_error(path)


def test_checkpoint_of_another_schema(tmp_path):
    path = tmp_path / "face.pt"
    save_checkpoint(path, trained_looking(TINY_FACE))
    msg = assert_one_line_weights_error(path, expect_schema="coco17")
    assert "face68" in msg and "coco17" in msg
    assert load_model(path, expect_schema="face68").cfg == TINY_FACE


def test_weights_that_do_not_fit_their_config(tmp_path):
    path = tmp_path / "mixed.pt"
    save_checkpoint(path, trained_looking(TINY_BODY))
    blob = read_checkpoint(path)
    blob["config"]["width"] = 24
    torch.save(blob, path)
    assert "does not match" in assert_one_line_weights_error(path)


@pytest.mark.faults
def test_cli_reports_a_missing_weights_file_on_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export-onnx", "missing.pt", "x.onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("poselive: error:") and "missing.pt" in err[0]
    assert not (tmp_path / "x.onnx").exists()


def test_averaged_weights_are_the_mean_of_the_states_and_one_network_only(tmp_path):
    from poselive.checkpoint import average_weights, save_checkpoint
    from poselive.errors import WeightsError
    from poselive.nets.configs import config_by_name
    from poselive.nets.hourglass import StackedHourglass
    cfg = config_by_name("body-det")
    paths = []
    for step in (10, 20, 30):
        torch.manual_seed(step)
        m = StackedHourglass(cfg)
        save_checkpoint(tmp_path / f"s{step}.pt", m, {"step": step})
        paths.append(tmp_path / f"s{step}.pt")
    model, steps = average_weights(paths)
    assert steps == [10, 20, 30]
    key = "heads.0.weight"
    parts = [torch.load(p, weights_only=True)["state_dict"][key] for p in paths]
    assert torch.allclose(model.state_dict()[key], sum(parts) / 3)
    assert not torch.allclose(model.state_dict()[key], parts[0])
    save_checkpoint(tmp_path / "other.pt", StackedHourglass(config_by_name("body-det-2")), {"step": 5})
    with pytest.raises(WeightsError, match="different networks"):
        average_weights([paths[0], tmp_path / "other.pt"])
