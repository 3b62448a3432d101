"""The model family: parity with the published PyTorch implementation, temporal shifts, variants, FLOPs."""

import dataclasses
import json
import pickle
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigsmall_jax import load_checkpoint
from bigsmall_jax.checkpoints.convert import convert_file
from bigsmall_jax.checkpoints.convert import main as convert_main
from bigsmall_jax.checkpoints.model_dir import CONFIG_FILE, save_checkpoint
from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.errors import UserError
from bigsmall_jax.model.bigsmall import ModelConfig, build_model, dummy_inputs, init_variables, temporal_shift
from bigsmall_jax.model.flops import forward_cost

DATA = Path(__file__).parent / "data"
PATHWAYS = [
    ("BP4D_Big_AU_Clip3_Split1_Epoch4.pth", "au", "big_au"),
    ("BP4D_Small_Heart_Clip3_Split1_Epoch4.pth", "bvp", "small_heart"),
    ("BP4D_Small_Resp_Clip3_Split1_Epoch4.pth", "resp", "small_resp"),
]


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------- parity with the published implementation


def test_multitask_parity_with_pytorch():
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    assert config.variant == "bigsmall" and config.n_au == 12 and config.bvp and config.resp
    golden = np.load(DATA / "bigsmall_golden.npz")
    out = build_model(config).apply(variables, nhwc(golden["big"]), nhwc(golden["small"]))
    assert set(out) == {"au", "bvp", "resp"}
    for key in ("au", "bvp", "resp"):
        np.testing.assert_allclose(np.asarray(out[key]), golden[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("filename,task,golden_key", PATHWAYS)
def test_published_pathway_checkpoints_parity(filename, task, golden_key):
    config, variables = convert_file(DATA / filename)
    golden = np.load(DATA / "pathways_golden.npz")
    n = golden["big_input"].shape[0] if task == "au" else golden["small_input"].shape[0]
    big = nhwc(golden["big_input"]) if task == "au" else np.zeros((n, 144, 144, 3), np.float32)
    small = nhwc(golden["small_input"]) if task != "au" else np.zeros((n, 9, 9, 3), np.float32)
    out = build_model(config).apply(variables, big, small)
    assert list(out) == [task]
    np.testing.assert_allclose(np.asarray(out[task]), golden[golden_key], atol=1e-4, rtol=0)


def test_convert_cli_and_load_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "ckpt"
    convert_main([str(DATA / "bigsmall_random_init.pth"), str(out_dir)])
    assert "bigsmall model" in capsys.readouterr().out
    model, variables = load_checkpoint(out_dir)
    golden = np.load(DATA / "bigsmall_golden.npz")
    out = model.apply(variables, nhwc(golden["big"]), nhwc(golden["small"]))
    np.testing.assert_allclose(np.asarray(out["au"]), golden["au"], atol=1e-4, rtol=0)
    # Writing over an existing checkpoint needs --overwrite.
    with pytest.raises(SystemExit) as exc:
        convert_main([str(DATA / "bigsmall_random_init.pth"), str(out_dir)])
    assert exc.value.code == 2
    assert "already exists" in capsys.readouterr().err


def test_small_pathway_task_from_flag_and_filename(tmp_path):
    heart = DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth"
    assert convert_file(heart)[0].heads == (("bvp", 1),)
    assert convert_file(heart, task="resp")[0].heads == (("resp", 1),)
    anonymous = tmp_path / "pathway.pth"
    anonymous.write_bytes(heart.read_bytes())
    assert convert_file(anonymous)[0].heads == (("bvp", 1),)  # default: pulse


# ---------------------------------------------------------------- hostile and broken files


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def _zip_with_pickle(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


def test_hostile_pickle_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    _zip_with_pickle(evil, pickle.dumps({"module.big_conv1.weight": _Evil()}, protocol=2))
    with pytest.raises(UserError, match="refusing to load global 'posix.system'|refusing to load global 'os.system'"):
        load_state_dict(evil)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    with pytest.raises(SystemExit):
        convert_main([str(evil), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_and_non_zip_files_are_clear_errors(tmp_path):
    data = (DATA / "bigsmall_random_init.pth").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated.pth"):
        load_state_dict(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth: not a PyTorch zip checkpoint"):
        load_state_dict(garbage)
    with pytest.raises(UserError, match="no such checkpoint file"):
        load_state_dict(tmp_path / "missing.pth")


def _rewrite_state(tmp_path, edit) -> Path:
    """A copy of the random-init checkpoint with its pickle re-written by `edit(state_dict_pickle_objects)`."""
    src = DATA / "bigsmall_random_init.pth"
    out = tmp_path / "edited.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item.endswith("data.pkl"):
                data = edit(data)
            zout.writestr(item, data)
    return out


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    # Drop a key: rename it in the pickle bytes, which makes it both missing and extra.
    renamed = _rewrite_state(tmp_path, lambda d: d.replace(b"module.resp_fc2.bias", b"module.resp_fc9.bias"))
    with pytest.raises(UserError, match=r"resp_fc2\.bias"):
        convert_file(renamed)
    state = load_state_dict(DATA / "bigsmall_random_init.pth")
    from bigsmall_jax.checkpoints.convert import _strip_prefix, infer_config, state_dict_to_variables

    state = _strip_prefix(state)
    config = infer_config(state)
    extra = dict(state, **{"bonus.weight": np.zeros(3, np.float32)})
    with pytest.raises(UserError, match=r"unexpected key\(s\) \['bonus.weight'\]"):
        state_dict_to_variables(extra, config)
    wrong = dict(state, **{"small_conv2.weight": np.zeros((32, 32, 5, 5), np.float32)})
    with pytest.raises(UserError, match=r"small_conv2\.weight' has shape \(32, 32, 5, 5\)"):
        state_dict_to_variables(wrong, config)


def test_hostile_or_wrong_checkpoint_directory(tmp_path):
    config, variables = convert_file(DATA / "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth")
    ckpt = save_checkpoint(tmp_path / "resp", config, variables)
    payload = json.loads((ckpt / CONFIG_FILE).read_text())
    payload["model"]["evil"] = "__import__('os')"
    (ckpt / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(UserError, match=r"unknown model config key\(s\) \['evil'\]"):
        load_checkpoint(ckpt)
    # A config that does not match the stored arrays (a BigSmall config over a pathway's arrays).
    payload["model"] = ModelConfig().to_dict()
    (ckpt / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(UserError, match="missing array"):
        load_checkpoint(ckpt)
    with pytest.raises(UserError, match="not a bigsmall-jax checkpoint directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nope")


# ---------------------------------------------------------------- temporal shift


def shift_reference(x: np.ndarray, n_segment: int, kind: str) -> np.ndarray:
    """Plain-loop temporal shift, written from the definition (frame by frame, channel by channel)."""
    nt, h, w, c = x.shape
    fold = c // 3
    out = np.zeros_like(x) if kind != "none" else x.copy()
    if kind == "none":
        return out
    for clip in range(nt // n_segment):
        for t in range(n_segment):
            frame = clip * n_segment + t
            for ch in range(c):
                if ch < fold:  # takes the next frame's value (shift back in time)
                    src = t + 1
                elif ch < 2 * fold:  # takes the previous frame's value
                    src = t - 1
                else:
                    src = t
                if 0 <= src < n_segment:
                    out[frame, :, :, ch] = x[clip * n_segment + src, :, :, ch]
                elif kind == "wrap":
                    out[frame, :, :, ch] = x[clip * n_segment + src % n_segment, :, :, ch]
    return out


@pytest.mark.parametrize("kind", ["wrap", "zero", "none"])
@pytest.mark.parametrize("n_segment,channels", [(1, 6), (2, 5), (3, 3), (3, 7), (4, 32), (5, 4)])
def test_temporal_shift_matches_plain_loop(kind, n_segment, channels):
    rng = np.random.default_rng(n_segment * 100 + channels)
    x = rng.normal(size=(2 * n_segment, 2, 3, channels)).astype(np.float32) + 1.0  # no zeros in x
    got = np.asarray(temporal_shift(jnp.asarray(x), n_segment, kind))
    np.testing.assert_array_equal(got, shift_reference(x, n_segment, kind))


@pytest.mark.parametrize("n_segment", [2, 3, 4])
def test_wrapping_shift_zero_fills_nothing(n_segment):
    x = np.random.default_rng(0).uniform(1, 2, size=(3 * n_segment, 4, 4, 9)).astype(np.float32)
    wrapped = np.asarray(temporal_shift(jnp.asarray(x), n_segment, "wrap"))
    zeroed = np.asarray(temporal_shift(jnp.asarray(x), n_segment, "zero"))
    assert (wrapped != 0).all()  # every value comes from the input
    assert (zeroed == 0).any()
    # Within each clip, every channel is a permutation of its frames: per-channel sums are kept.
    clips = lambda a: a.reshape(3, n_segment, 4, 4, 9).sum(axis=1)  # noqa: E731
    np.testing.assert_allclose(clips(wrapped), clips(x), rtol=1e-6)


# ---------------------------------------------------------------- variants, segments, dtypes, dropout


@pytest.mark.parametrize("n_segment", [1, 3, 4])
def test_any_segment_length_runs(n_segment):
    model = build_model(n_segment=n_segment, big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8),
                        dense_units=8)
    variables = init_variables(model, jax.random.key(0))
    big, small = dummy_inputs(model.config, n_clips=2)
    out = model.apply(variables, big + 1.0, small + 0.5)
    assert {k: v.shape for k, v in out.items()} == {"au": (2 * n_segment, 12), "bvp": (2 * n_segment, 1),
                                                   "resp": (2 * n_segment, 1)}


def test_big_branch_sees_only_the_first_frame_of_each_segment():
    model = build_model(n_segment=3)
    variables = init_variables(model, jax.random.key(1))
    rng = np.random.default_rng(0)
    big = rng.normal(size=(6, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(6, 9, 9, 3)).astype(np.float32)
    base = model.apply(variables, big, small)
    changed = big.copy()
    changed[[1, 2, 4, 5]] = rng.normal(size=(4, 144, 144, 3))  # not the first frames
    same = model.apply(variables, changed, small)
    np.testing.assert_allclose(np.asarray(same["au"]), np.asarray(base["au"]), atol=1e-6)
    changed[3] += 1.0  # first frame of clip 2 changes clip 2's three outputs only
    diff = np.abs(np.asarray(model.apply(variables, changed, small)["au"]) - np.asarray(base["au"])).max(axis=1)
    assert (diff[:3] < 1e-6).all() and (diff[3:] > 1e-6).all()


def test_concat_fusion_and_bfloat16_compute():
    config = ModelConfig(fusion="concat")
    model = build_model(config)
    variables = init_variables(model, jax.random.key(0))
    assert variables["params"]["au"]["fc1"]["kernel"].shape == (9 * 9 * 128, 128)
    big, small = (np.random.default_rng(1).normal(size=s).astype(np.float32)
                  for s in ((3, 144, 144, 3), (3, 9, 9, 3)))
    out32 = model.apply(variables, big, small)
    bf16 = build_model(dataclasses.replace(config, dtype="bfloat16"))
    out16 = bf16.apply(variables, big, small)
    assert all(v.dtype == jnp.float32 for v in out16.values())
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(
        init_variables(bf16, jax.random.key(0))))
    np.testing.assert_allclose(np.asarray(out16["au"]), np.asarray(out32["au"]), atol=0.05)


def test_dropout_only_when_training():
    model = build_model()
    variables = init_variables(model, jax.random.key(0))
    big, small = (np.random.default_rng(2).normal(size=s).astype(np.float32)
                  for s in ((3, 144, 144, 3), (3, 9, 9, 3)))
    eval1 = model.apply(variables, big, small, train=False)
    eval2 = model.apply(variables, big, small, train=False)
    np.testing.assert_array_equal(np.asarray(eval1["au"]), np.asarray(eval2["au"]))
    train_a = model.apply(variables, big, small, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, big, small, train=True, rngs={"dropout": jax.random.key(2)})
    assert np.abs(np.asarray(train_a["au"]) - np.asarray(train_b["au"])).max() > 1e-4
    # The Small pathway has no dropout: train and eval agree.
    small_model = build_model(variant="small", n_au=0, resp=False, shift="none")
    sv = init_variables(small_model, jax.random.key(0))
    np.testing.assert_array_equal(
        np.asarray(small_model.apply(sv, big, small, train=True, rngs={"dropout": jax.random.key(3)})["bvp"]),
        np.asarray(small_model.apply(sv, big, small)["bvp"]))


@pytest.mark.parametrize("big_shape,small_shape,message", [
    ((4, 144, 144, 3), (4, 9, 9, 3), "whole number of clips"),
    ((3, 144, 144, 3), (3, 9, 9, 1), r"small input must be \(N\*T, 9, 9, 3\)"),
    ((3, 3, 144, 144), (3, 9, 9, 3), r"big input must be \(N\*T, 144, 144, 3\) NHWC"),
    ((6, 144, 144, 3), (3, 9, 9, 3), "same number of frames"),
])
def test_wrong_input_shapes_raise_value_error(big_shape, small_shape, message):
    model = build_model()
    variables = init_variables(model, jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        model.apply(variables, np.zeros(big_shape, np.float32), np.zeros(small_shape, np.float32))


def test_bad_model_config_is_a_clear_error():
    with pytest.raises(UserError, match="shift 'sideways'"):
        ModelConfig(shift="sideways")
    with pytest.raises(UserError, match=r"unknown model config key\(s\) \['n_segments'\]"):
        ModelConfig.from_dict({"n_segments": 3})


# ---------------------------------------------------------------- FLOPs


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


def test_pickle_module_is_not_used_for_orbax_checkpoints(tmp_path):
    """The checkpoint directory holds JSON and tensorstore data only: no pickle opcodes anywhere."""
    config, variables = convert_file(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth")
    ckpt = save_checkpoint(tmp_path / "heart", config, variables)
    for f in ckpt.rglob("*"):
        if f.is_file():
            head = f.read_bytes()[:2]
            assert head not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"), f
