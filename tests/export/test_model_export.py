"""`python -m bigsmall_jax.export`: ONNX Runtime and reloaded StableHLO give the reference outputs of the
published PyTorch code (tests/data, from ../shared/reference) and the JAX model's on a real preprocessed clip;
unexportable ops and bad flags are one error line with nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import imageio
import jax
import numpy as np
import onnx
import pytest
from cli_checks import expect_one_error_line
from face_drawing import draw_face

from bigsmall_jax import load_checkpoint
from bigsmall_jax.errors import UserError
from bigsmall_jax.export import export_model, load_stablehlo, onnx_session
from bigsmall_jax.export.__main__ import main as export_main
from bigsmall_jax.infer import main as infer_main
from bigsmall_jax.inference.runners import OnnxRunner

DATA = Path(__file__).parents[1] / "data"
ATOL = 1e-5  # float32 parity, ONNX Runtime or reloaded StableHLO vs JAX and vs the PyTorch reference
PATHWAYS = {  # checkpoint -> (reference key in pathways_golden.npz, input key, head)
    "BP4D_Big_AU_Clip3_Split1_Epoch4.pth": ("big_au", "big_input", "au"),
    "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth": ("small_heart", "small_input", "bvp"),
    "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth": ("small_resp", "small_input", "resp"),
}


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


@pytest.fixture(scope="module")
def golden():
    g = np.load(DATA / "bigsmall_golden.npz")
    return {"big": _nhwc(g["big"]), "small": _nhwc(g["small"]), **{k: g[k] for k in ("au", "bvp", "resp")}}


@pytest.fixture(scope="module")
def real_clip():
    """The reference preprocessing of a real 12-frame face clip (4 clips of 3 frames)."""
    g = np.load(DATA / "preprocess_golden.npz")
    return g["big"].astype(np.float32), g["small"].astype(np.float32)


@pytest.fixture(scope="module")
def bigsmall(tmp_path_factory):
    """The multitask reference weights, exported to dynamic ONNX and StableHLO."""
    model, variables = load_checkpoint(DATA / "bigsmall_random_init.pth")
    out = tmp_path_factory.mktemp("bigsmall")
    export_model(model, variables, out / "m.onnx", "onnx", "dynamic")
    export_model(model, variables, out / "m.stablehlo", "stablehlo", "dynamic")
    return model, variables, out


def _run_onnx(path, big, small) -> dict[str, np.ndarray]:
    session, _ = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"big": big, "small": small}), strict=True))


def _same_up_to_rounding(a, b) -> bool:
    """JSON values equal, numbers (not booleans) to 1e-4 relative or 1e-3 absolute."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_up_to_rounding(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_up_to_rounding, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b == pytest.approx(a, rel=1e-4, abs=1e-3)
    return a == b


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_onnx_and_stablehlo_give_the_reference_outputs(bigsmall, golden, real_clip):
    model, variables, out = bigsmall
    exported = load_stablehlo(out / "m.stablehlo")
    for big, small, ref in [(golden["big"], golden["small"], golden), (*real_clip, None)]:
        jax_out = {k: np.asarray(v) for k, v in jax.jit(model.apply)(variables, big, small).items()}
        for name, got in [("onnx", _run_onnx(out / "m.onnx", big, small)),
                          ("stablehlo", exported.call({"big": big, "small": small}))]:
            assert sorted(got) == ["au", "bvp", "resp"], name
            for k in got:
                assert got[k].shape == jax_out[k].shape and got[k].dtype == np.float32
                assert _max_diff(got[k], jax_out[k]) <= ATOL, (name, k)
                if ref is not None:  # the published PyTorch implementation's outputs
                    assert _max_diff(got[k], ref[k]) <= ATOL, (name, k)


def test_files_carry_names_shapes_and_config(bigsmall):
    model, _, out = bigsmall
    proto = onnx.load(out / "m.onnx")
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    assert [(v.name, dims(v)) for v in proto.graph.input] == [("big", ["frames", 144, 144, 3]),
                                                               ("small", ["frames", 9, 9, 3])]
    assert [(v.name, dims(v)) for v in proto.graph.output] == [("au", ["frames", 12]), ("bvp", ["frames", 1]),
                                                                ("resp", ["frames", 1])]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["bigsmall.model_config"]) == model.config.to_dict()
    assert meta["bigsmall.n_segment"] == "3" and meta["bigsmall.batch_clips"] == "dynamic"
    assert [t["name"] for t in json.loads(meta["bigsmall.outputs"])] == ["au", "bvp", "resp"]
    exported = load_stablehlo(out / "m.stablehlo")
    assert jax.tree_util.tree_structure((({"big": 0, "small": 0},), {})) == exported.in_tree
    assert [str(a) for a in exported.in_avals] == ["float32[3*N,144,144,3]", "float32[3*N,9,9,3]"]
    assert jax.tree_util.tree_structure({"au": 0, "bvp": 0, "resp": 0}) == exported.out_tree


def test_dynamic_onnx_refuses_a_partial_clip(bigsmall, golden):
    _, _, out = bigsmall
    session, _ = onnx_session(out / "m.onnx")
    with pytest.raises(Exception, match="(?i)reshape"):
        session.run(None, {"big": golden["big"][:4], "small": golden["small"][:4]})


@pytest.mark.parametrize("filename", sorted(PATHWAYS))
def test_published_single_task_checkpoints(tmp_path, filename, real_clip):
    ref_key, input_key, head = PATHWAYS[filename]
    g = np.load(DATA / "pathways_golden.npz")
    x = _nhwc(g[input_key])
    zeros = lambda n, size: np.zeros((n, size, size, 3), np.float32)
    big, small = (x, zeros(len(x), 9)) if input_key == "big_input" else (zeros(len(x), 144), x)
    model, variables = load_checkpoint(DATA / filename)
    sig = export_model(model, variables, tmp_path / "m.onnx", "onnx", "dynamic")
    assert sig.output_names == (head,) and sig.n_segment == 1  # per-frame models take any frame count
    got = _run_onnx(tmp_path / "m.onnx", big, small)
    assert _max_diff(got[head], g[ref_key]) <= ATOL
    assert _max_diff(got[head], model.apply(variables, big, small)[head]) <= ATOL
    real = _run_onnx(tmp_path / "m.onnx", *real_clip)
    assert _max_diff(real[head], model.apply(variables, *real_clip)[head]) <= ATOL


def test_cli_fixed_batch_float16(tmp_path, capsys, bigsmall, real_clip):
    """A 2-clip float16 file: float16 inputs, float32 outputs near the float32 model's; `OnnxRunner` feeds
    it batches of any size."""
    model, variables, _ = bigsmall
    out = tmp_path / "m16.onnx"
    export_main(["--checkpoint", str(DATA / "bigsmall_random_init.pth"), "--format", "onnx", "--output", str(out),
                 "--batch-clips", "2", "--dtype", "float16"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["inputs"][0] == {"name": "big", "shape": [6, 144, 144, 3], "dtype": "float16"}
    runner = OnnxRunner(out)
    assert runner.config == model.config and runner.signature.batch_clips == 2
    assert [i.type for i in runner.session.get_inputs()] == ["tensor(float16)"] * 2
    got = runner(None, *real_clip)  # 12 frames: two runs of 6
    for k, v in model.apply(variables, *real_clip).items():
        assert got[k].dtype == np.float32 and got[k].shape == v.shape
        assert _max_diff(got[k], v) <= 2e-3 * (1 + float(np.max(np.abs(v)))), k


class _CallbackModel:
    """A model-like object whose forward pass holds a host callback, which neither format can express."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def apply(self, variables, big, small, train=False):
        out = self.model.apply(variables, big, small, train=train)
        bvp = jax.pure_callback(np.tanh, jax.ShapeDtypeStruct(out["bvp"].shape, out["bvp"].dtype), out["bvp"])
        return {**out, "bvp": bvp}


@pytest.mark.parametrize("fmt,needle", [("onnx", "pure_callback"), ("stablehlo", "callback")])
def test_unsupported_op_is_one_error_line_and_no_file(tmp_path, capsys, monkeypatch, fmt, needle):
    model, variables = load_checkpoint(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth")
    monkeypatch.setattr("bigsmall_jax.export.model_export.load_checkpoint",
                        lambda path: (_CallbackModel(model), variables))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    expect_one_error_line(capsys, export_main, ["--checkpoint", "any", "--format", fmt, "--output",
                                                 out_dir / f"m.{fmt}"], out_dir, f"m.{fmt}", needle)


@pytest.mark.parametrize("flags,needles", [
    (["--format", "tflite", "--output", "m.onnx"], ["--format", "tflite"]),
    (["--format", "onnx", "--output", "m.stablehlo"], ["m.stablehlo", ".onnx"]),
    (["--format", "onnx", "--output", "m.onnx", "--batch-clips", "0"], ["--batch-clips"]),
    (["--format", "onnx", "--output", "m.onnx", "--dtype", "int8"], ["--dtype", "int8"]),
    (["--format", "onnx", "--output", "missing/m.onnx"], ["missing"]),
])
def test_bad_flags(tmp_path, capsys, monkeypatch, flags, needles):
    monkeypatch.chdir(tmp_path)
    expect_one_error_line(capsys, export_main, ["--checkpoint", str(DATA / "bigsmall_random_init.pth"), *flags],
                          tmp_path, *needles)


def test_bad_checkpoint_and_bad_onnx_file(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    expect_one_error_line(capsys, export_main, ["--checkpoint", str(tmp_path / "nope"), "--format", "onnx",
                                                 "--output", out_dir / "m.onnx"], out_dir, "nope")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.onnx: ONNX Runtime cannot load it"):
        OnnxRunner(junk)


def _write_face_video(path: Path, t: int = 50, fps: float = 25.0) -> Path:
    """A lossless video of a drawn face (which the Haar cascade finds) with a green 'pulse' at 1.5 Hz, a slow
    brightness 'breath' and sensor noise."""
    rng = np.random.default_rng(0)
    k = np.arange(t)[:, None, None, None]
    face = draw_face(120, 160, 70, 60, 32).astype(np.float64)
    frames = (face + 3.0 * np.sin(2 * np.pi * 1.5 * k / fps) * np.array([0, 1, 0])
              + 4.0 * np.sin(2 * np.pi * 0.3 * k / fps) + rng.normal(0, 1.0, (t, *face.shape)))
    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264rgb", pixelformat="rgb24",
                            macro_block_size=1, output_params=["-qp", "0"], ffmpeg_log_level="error") as w:
        for f in np.clip(frames, 0, 255).astype(np.uint8):
            w.append_data(f)
    return path


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_infer_runtime_onnx_gives_the_json_of_jax(tmp_path, capsys, bigsmall):
    _, _, out = bigsmall
    video = _write_face_video(tmp_path / "clip.mp4")  # the whole pipeline: face crop, Big and Small frames
    docs = {}
    for runtime, ckpt in [("jax", DATA / "bigsmall_random_init.pth"), ("onnx", out / "m.onnx")]:
        infer_main([str(video), "--checkpoint", str(ckpt), "--output", str(tmp_path / f"{runtime}.json"),
                    "--batch-clips", "4", "--runtime", runtime])
        capsys.readouterr()
        docs[runtime] = json.loads((tmp_path / f"{runtime}.json").read_text())
    jax_doc, onnx_doc = docs["jax"], docs["onnx"]
    skip = {"checkpoint", "seconds", "frames_per_s", "bvp", "resp", "au_probs", "hr_bpm", "rr_bpm"}
    # Everything else, HRV and signal quality included, is the same up to float32 rounding of the waves.
    assert _same_up_to_rounding({k: v for k, v in onnx_doc.items() if k not in skip},
                                {k: v for k, v in jax_doc.items() if k not in skip})
    assert onnx_doc["num_frames"] == 50 and onnx_doc["n_padded_frames"] == 1 and onnx_doc["face_box"][2] > 50
    for k in ("bvp", "resp", "au_probs"):
        assert np.shape(onnx_doc[k]) == np.shape(jax_doc[k]) and _max_diff(onnx_doc[k], jax_doc[k]) <= ATOL, k
    for k in ("hr_bpm", "rr_bpm"):
        assert onnx_doc[k] == pytest.approx(jax_doc[k], rel=1e-3), k


def test_infer_runtime_onnx_needs_an_onnx_file(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    expect_one_error_line(capsys, infer_main, [video, "--checkpoint", DATA / "bigsmall_random_init.pth", "--output",
                                                out_dir / "o.json", "--runtime", "onnx"], out_dir, "--runtime onnx")


def test_a_missing_optional_package_says_how_to_install_it(tmp_path, monkeypatch, bigsmall):
    """Without the `export` extra, an ONNX export is one error naming the package and the extra, and no file."""
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # what an import finds for a package not installed
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match=r"jax2onnx is not installed.*bigsmall-jax\[export\]"):
        export_model(bigsmall[0], bigsmall[1], out, "onnx", "dynamic")
    assert not out.exists()


def test_the_shipped_model_exports_with_the_reference_outputs(tmp_path):
    """`export --checkpoint bp4d-fold1`: the three published pathways in one ONNX file give the reference
    outputs of each published checkpoint."""
    g = np.load(DATA / "pathways_golden.npz")
    big, small = _nhwc(g["big_input"]), _nhwc(g["small_input"])[: len(g["big_input"])]
    out = tmp_path / "published.onnx"
    export_main(["--checkpoint", "bp4d-fold1", "--format", "onnx", "--output", str(out), "--batch-clips", "dynamic"])
    got = _run_onnx(out, big, small)
    assert _max_diff(got["au"], g["big_au"]) <= ATOL
    assert _max_diff(got["bvp"], g["small_heart"][: len(big)]) <= ATOL
    assert _max_diff(got["resp"], g["small_resp"][: len(big)]) <= ATOL
