"""The lateral-connection and grayscale-Big models against the authors' classes (tests/data/variants_golden.npz,
and ../shared/reference/variants when present), for any n_segment; the named variants and their class names;
their FLOPs against a closed-form count."""

from pathlib import Path

import jax
import numpy as np
import pytest

from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.checkpoints.torch_import import infer_config, state_dict_to_variables
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import AUTHOR_CLASSES, NAMED_VARIANTS, ModelConfig, build_model, init_variables, named_config
from bigsmall_jax.model.flops import forward_cost
from bigsmall_jax.model.variants import variants_of
from tests.model.test_flops import conv_flops

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "variants_golden.npz"
SHARED = ROOT.parent / "shared" / "reference" / "variants"
CLASSES = {
    "BSSFWTSM_BiDirLatConn": "bigsmall_bidir",
    "BSSFWTSM_Big2SmallLatConn": "bigsmall_big2small",
    "BSSFWTSM_Small2BigLatConn": "bigsmall_small2big",
    "BigSmallSlowFastWTSM_GrayScaleBig": "bigsmall_gray",
}
HEADS = {"au": 12, "bvp": 1, "resp": 1}


def nhwc(x):
    """(N, C, H, W) PyTorch layout -> (N, H, W, C)."""
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


def compact_state(golden, name: str) -> dict[str, np.ndarray]:
    """The class's conv weights from the compact golden, with zero heads (only the features before the heads
    are checked with it)."""
    state = {k.split("/", 1)[1]: golden[k] for k in golden.files if k.startswith(f"{name}/") and "_conv" in k}
    for head, out in HEADS.items():
        state.update({f"{head}_fc1.weight": np.zeros((128, 5184), np.float32), f"{head}_fc1.bias": np.zeros(128),
                      f"{head}_fc2.weight": np.zeros((out, 128), np.float32), f"{head}_fc2.bias": np.zeros(out)})
    return state


def run_with_taps(config, variables, big, small):
    out, state = build_model(config).apply(variables, big, small, mutable=["intermediates"])
    return out, {k: np.asarray(v[0]) for k, v in state["intermediates"].items()}


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.mark.parametrize("name", CLASSES)
def test_features_and_block2_inputs_match_the_authors_class(golden, name):
    state = compact_state(golden, name)
    config = infer_config(state)
    assert variants_of(config) == [CLASSES[name]]
    variables = state_dict_to_variables(state, config)
    # Only rows 0 and 3 (the first frame of each clip) are stored: the others must not be read at all.
    big = np.full((6, 144, 144, 3), np.nan, np.float32)
    big[::3] = nhwc(golden["big_first_frames"])
    _, taps = run_with_taps(config, variables, big, nhwc(golden["small"]))
    fused = taps["fused"].transpose(0, 3, 1, 2).reshape(6, -1)  # PyTorch's C,H,W flatten
    np.testing.assert_allclose(fused, golden[f"{name}/fused"], atol=1e-5, rtol=0)
    if config.lateral != "none":
        np.testing.assert_allclose(taps["small_block2_in"], nhwc(golden[f"{name}/small_block2_in"]), atol=1e-5,
                                   rtol=0)
        np.testing.assert_allclose(taps["big_block2_in"][:, :16, :16], nhwc(golden[f"{name}/big_block2_in_crop"]),
                                   atol=1e-5, rtol=0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/reference/variants is not beside the repository")
@pytest.mark.parametrize("name", CLASSES)
def test_outputs_match_the_authors_class_on_both_input_sets(name):
    state = load_state_dict(SHARED / f"{name}.pth")
    config = infer_config(state)
    variables = state_dict_to_variables(state, config)
    reference = np.load(SHARED / f"{name}.npz")
    model = build_model(config)
    for suffix in ("", "_lowfreq"):
        out = model.apply(variables, nhwc(reference[f"big{suffix}"]), nhwc(reference[f"small{suffix}"]))
        for head in HEADS:
            np.testing.assert_allclose(np.asarray(out[head]), reference[f"{head}{suffix}"], atol=1e-5, rtol=0)


# bidir runs both lateral connections' code
@pytest.mark.parametrize("variant,n_segment", [("bigsmall_bidir", 2), ("bigsmall_bidir", 4), ("bigsmall_gray", 4)])
def test_new_variants_run_for_any_clip_length_clip_by_clip(variant, n_segment):
    """Two clips: outputs are finite and per frame, each clip's depend on that clip only (swapping the clips
    swaps the outputs), and the Big channels reaching the Small branch are the same on every frame of a clip."""
    config = named_config(variant, n_segment=n_segment)
    model = build_model(config)
    variables = init_variables(model, jax.random.key(1))
    rng = np.random.default_rng(n_segment)
    n = 2 * n_segment
    big = rng.normal(size=(n, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(n, 9, 9, 3)).astype(np.float32)
    out, taps = run_with_taps(config, variables, big, small)
    swap = np.r_[n_segment:n, 0:n_segment]
    out_swapped = model.apply(variables, big[swap], small[swap])
    for head, size in HEADS.items():
        assert out[head].shape == (n, size) and np.all(np.isfinite(out[head]))
        np.testing.assert_allclose(np.asarray(out_swapped[head]), np.asarray(out[head])[swap], atol=1e-5, rtol=0)
    if config.lateral in ("big2small", "both"):
        from_big = taps["small_block2_in"][..., :32].reshape(2, n_segment, 9, 9, 32)
        np.testing.assert_array_equal(from_big, np.broadcast_to(from_big[:, :1], from_big.shape))
    if config.lateral in ("small2big", "both"):
        assert taps["big_block2_in"].shape == (2, 72, 72, 64)


def test_every_authors_class_names_a_variant_and_back():
    assert len(AUTHOR_CLASSES) == 12
    # pathways: the three single-task pathways run as one model (the shipped published weights), no class of its own
    assert set(AUTHOR_CLASSES.values()) | {"small_resp", "pathways"} == set(NAMED_VARIANTS)
    for cls, name in AUTHOR_CLASSES.items():
        assert named_config(cls) == named_config(name)
    with pytest.raises(UserError, match="unknown model variant 'BSSFWTSM_Lateral'.*BSSFWTSM_BiDirLatConn"):
        named_config("BSSFWTSM_Lateral")


@pytest.mark.parametrize("fields,message", [
    ({"lateral": "both", "big_downsample": False}, "lateral connections need variant 'bigsmall'"),
    ({"lateral": "sideways"}, "lateral 'sideways' is not one of"),
    ({"variant": "small", "big_gray": True, "n_au": 0, "resp": False}, "big_gray needs a Big branch"),
])
def test_bad_wiring_is_refused(fields, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(**fields)


def test_lateral_flops_add_the_wider_block2_convs():
    """Closed form: Small->Big widens big_conv3 (72x72, once per clip) from 32 to 64 input channels, Big->Small
    small_conv3 (9x9, on each of the T frames) and adds the 8x8 average pool (one FLOP per pooled value); the
    Small clip mean and the upsampling add well under 1%."""
    t = 3
    base = forward_cost(build_model(named_config("bigsmall")))
    small2big = conv_flops(72, 32, 32)
    big2small = t * conv_flops(9, 32, 32) + 72 * 72 * 32
    for variant, extra, extra_params in (("bigsmall_small2big", small2big, 32 * 32 * 9),
                                         ("bigsmall_big2small", big2small, 32 * 32 * 9),
                                         ("bigsmall_bidir", small2big + big2small, 2 * 32 * 32 * 9)):
        cost = forward_cost(build_model(named_config(variant)))
        assert cost["flops_per_clip"] - base["flops_per_clip"] == pytest.approx(extra, rel=0.01)
        assert cost["params"] - base["params"] == extra_params
    gray = forward_cost(build_model(named_config("bigsmall_gray")))
    assert base["params"] - gray["params"] == 32 * 2 * 9  # big_conv1 reads 1 channel instead of 3
