"""FLOPs from XLA's cost analysis against an analytic count of the convs and dense layers; the flops command."""

import json

import pytest

from bigsmall_jax.flops import main as flops_main
from bigsmall_jax.model import SINGLE_TASK_VARIANTS, build_model
from bigsmall_jax.model.flops import forward_cost


def conv_flops(size: int, c_in: int, c_out: int) -> int:
    """3x3 'same' conv on size x size: 2 FLOPs per multiply-add, taps on zero padding not counted."""
    taps_per_axis = 3 * size - 2  # each output position sees 3 taps, minus the 2 padded at the borders
    return 2 * c_in * c_out * taps_per_axis**2


def analytic_flops(n_segment: int, downsample: bool = True) -> float:
    """Convs and dense layers of BigSmall for one clip of n_segment frames (pooling, ReLU, bias adds and
    the fusion sum are below 0.5% and left out)."""
    big_frames = 1 if downsample else n_segment
    big = (conv_flops(144, 3, 32) + conv_flops(144, 32, 32) + conv_flops(72, 32, 32) + conv_flops(72, 32, 64)
           + conv_flops(36, 64, 64) + conv_flops(36, 64, 64))
    small = conv_flops(9, 3, 32) + conv_flops(9, 32, 32) + conv_flops(9, 32, 32) + conv_flops(9, 32, 64)
    heads = 3 * 2 * 5184 * 128 + 2 * 128 * (12 + 1 + 1)
    return big_frames * big + n_segment * (small + heads)


@pytest.mark.parametrize("n_segment", [3, 4])
def test_flops_match_analytic_count(n_segment):
    cost = forward_cost(build_model(n_segment=n_segment))
    expected = analytic_flops(n_segment)
    assert abs(cost["flops_per_clip"] - expected) / expected < 0.02
    assert cost["flops_per_frame"] == pytest.approx(cost["flops_per_clip"] / n_segment)
    assert cost["params"] == 2_142_478  # 6 Big + 4 Small convs and three 5184-128-k heads


def test_temporal_downsampling_cuts_big_cost_by_n_segment():
    n = 3
    with_ds = forward_cost(build_model(n_segment=n))["flops_per_clip"]
    without = forward_cost(build_model(n_segment=n, big_downsample=False))["flops_per_clip"]
    big_only = forward_cost(build_model(variant="big", bvp=False, resp=False, shift="none",
                                        big_downsample=False, n_segment=n))["flops_per_clip"]
    assert without == pytest.approx(analytic_flops(n, downsample=False), rel=0.02)
    # Downsampling removes (n-1)/n of the Big branch's cost, and BigSmall costs about 1/n of Big-every-frame.
    assert (without - with_ds) == pytest.approx(big_only * (n - 1) / n, rel=0.02)
    assert with_ds / big_only == pytest.approx(1 / n, rel=0.05)


def test_flops_command_prints_and_writes_the_single_task_sum(tmp_path, capsys):
    out = tmp_path / "flops.json"
    flops_main(["--models", *SINGLE_TASK_VARIANTS, "--output", str(out)])
    costs = json.loads(out.read_text())
    assert list(costs) == [*SINGLE_TASK_VARIANTS, "single_task_sum"]
    for key in ("flops_per_clip", "flops_per_frame", "params"):
        assert costs["single_task_sum"][key] == pytest.approx(sum(costs[b][key] for b in SINGLE_TASK_VARIANTS))
    printed = capsys.readouterr().out
    assert all(name in printed for name in costs)
