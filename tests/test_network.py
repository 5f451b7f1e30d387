"""The stacked hourglass: any input size gives heatmaps of ceil(H/4) x ceil(W/4), every named config builds,
and each model stays within its compute budget."""
import math

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")
import torch.nn.functional as F  # noqa: E402

from poselive.bench.network import model_stats  # noqa: E402
from poselive.nets.configs import CONFIGS, NetConfig, config_by_name  # noqa: E402
from poselive.nets.hourglass import StackedHourglass, count_params  # noqa: E402

# A tiny config keeps the shape tests fast; the named configs are checked separately.
TINY = NetConfig("tiny", "coco17", (48, 64), stacks=3, depth=2, width=16, stem_width=8, block="bottleneck")


@pytest.fixture(scope="module")
def body_lite():
    torch.manual_seed(0)
    return StackedHourglass(config_by_name("body-lite")).eval()


def forward(model, h, w, n=1):
    with torch.inference_mode():
        return model(torch.randn(n, 3, h, w))


@pytest.mark.parametrize("hw", [(128, 96), (97, 203), (33, 17), (5, 3), (1, 1), (64, 65)])
def test_output_is_a_quarter_of_any_input_size_rounded_up(body_lite, hw):
    h, w = hw
    out = forward(body_lite, h, w, n=2)
    assert out.shape == (2, 17, math.ceil(h / 4), math.ceil(w / 4))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_internal_padding_is_only_at_the_far_edges(body_lite):
    # The network zero-pads bottom/right to a multiple of 4 * 2**depth and crops back; feeding it the padded
    # input directly must give the same heatmaps in the kept region, so heatmap px keep their meaning.
    torch.manual_seed(1)
    x = torch.randn(1, 3, 97, 203)
    m = body_lite.multiple
    padded = F.pad(x, (0, (-203) % m, 0, (-97) % m))
    with torch.inference_mode():
        a = body_lite(x)
        b = body_lite(padded)[..., :a.shape[-2], :a.shape[-1]]
    assert torch.allclose(a, b, atol=1e-5)


def test_forward_stacks_gives_one_map_per_stack_and_forward_is_the_last():
    torch.manual_seed(0)
    model = StackedHourglass(TINY).eval()
    x = torch.randn(2, 3, 57, 41)
    with torch.inference_mode():
        stacks = model.forward_stacks(x)
        last = model(x)
    assert len(stacks) == TINY.stacks
    for hm in stacks:
        assert hm.shape == (2, 17, 15, 11)
    assert torch.equal(stacks[-1], last)
    assert not torch.equal(stacks[0], stacks[-1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_named_config_builds_and_predicts_its_keypoints(name):
    cfg = config_by_name(name)
    model = StackedHourglass(cfg).eval()
    out = forward(model, 40, 36)
    assert out.shape == (1, cfg.num_outputs, 10, 9)
    assert len(model.hourglasses) == cfg.stacks


def test_unknown_config_name_says_which_exist():
    with pytest.raises(ValueError, match="body-lite"):
        config_by_name("body-huge")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_stats_counts_the_real_parameters(name):
    cfg = config_by_name(name)
    stats = model_stats(cfg)
    assert stats.params == count_params(StackedHourglass(cfg))
    assert stats.input_wh == cfg.input_wh
    assert stats.gflops > 0


@pytest.mark.slow
def test_flops_grow_with_the_input_area():
    # Fully convolutional: twice the width (both multiples of the padding) is twice the work.
    cfg = config_by_name("body-lite")
    one = model_stats(cfg, (96, 128)).gflops
    two = model_stats(cfg, (192, 128)).gflops
    assert two == pytest.approx(2 * one, rel=1e-6)


def test_flops_match_a_real_forward_pass():
    # model_stats runs on the meta device; the count must be the one a real forward pass gives.
    from torch.utils.flop_counter import FlopCounterMode

    model = StackedHourglass(TINY).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 64, 48))
    assert model_stats(TINY).gflops == pytest.approx(counter.get_total_flops() / 1e9, rel=1e-9)


@pytest.mark.slow
def test_lite_models_fit_a_cpu_budget_and_full_is_the_big_one():
    stats = {name: model_stats(config_by_name(name)) for name in CONFIGS}
    for lite in ("body-lite", "face-lite"):
        assert stats[lite].params < 1.5e6
        assert stats[lite].gflops < 1.0
    assert stats["body-full"].gflops > 10 * stats["body-lite"].gflops
