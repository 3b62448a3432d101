"""Building and opening datasets (`ensure_dataset`, `open_prepared`) and `python -m bigsmall_jax.prepare`: an
interrupted build never loads, bad input is one clear error, built data opens unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tiny_data import TINY_SYNTHETIC

from bigsmall_jax import prepare as prepare_cli
from bigsmall_jax.datasets import prepare, registry
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


MINI = dict(n_subjects=4, videos_per_subject=1, duration_s=0.6, fps=25.0, frame_size=48, big_size=36,
            small_size=4)


def test_real_dataset_without_raw_data_is_one_clear_error(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(UserError, match=r"raw data directory .*no_such_dir does not exist"):
        prepare.ensure_dataset("ubfc_rppg", tmp_path / "data", source_dir=missing, progress=False)
    assert not list((tmp_path / "data").glob("bigsmall_ubfc_rppg/*/*/dataset_info.json"))


def _prepared_dirs(data_dir):
    return sorted(p.parent for p in data_dir.glob("bigsmall_synthetic/*/*/dataset_info.json"))


def test_interrupted_build_is_not_loadable_and_a_rerun_succeeds(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    real = tb.BigsmallSynthetic._iter_recordings

    def failing(self, root, subjects):
        total, recordings = real(self, root, subjects)

        def gen():
            yield next(recordings)  # one video is preprocessed and written, then the source breaks
            raise RuntimeError("simulated crash in the middle of the build")

        return total, gen()

    monkeypatch.setattr(tb.BigsmallSynthetic, "_iter_recordings", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    builder = tb.BigsmallSynthetic(data_dir=data_dir, config=registry.make_config("synthetic", **MINI))
    assert not builder.is_prepared() and not _prepared_dirs(data_dir)
    assert not list(data_dir.rglob("incomplete.*"))  # the temporary directory was removed
    assert not data_dir.exists()  # nor a lock file or an empty config folder: the data dir it made is gone too
    with pytest.raises(UserError, match="is not built"):
        tb.data_source(builder, "train")

    monkeypatch.setattr(tb.BigsmallSynthetic, "_iter_recordings", real)
    builder = prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    assert builder.is_prepared() and len(tb.data_source(builder, "train")) > 0


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # subprocess fork+exec after JAX started: safe
def test_killed_build_leaves_nothing_loadable(tmp_path):
    """A process killed mid-build (no Python cleanup) leaves only an ignored incomplete.* directory."""
    data_dir = tmp_path / "data"
    script = textwrap.dedent(f"""
        import os
        from bigsmall_jax.datasets import prepare
        from bigsmall_jax.datasets import tfds_builders as tb
        real = tb.BigsmallSynthetic._iter_recordings
        def dying(self, root, subjects):
            total, recordings = real(self, root, subjects)
            def gen():
                yield next(recordings)
                os._exit(9)  # like SIGKILL: no finally blocks, no cleanup
            return total, gen()
        tb.BigsmallSynthetic._iter_recordings = dying
        prepare.ensure_dataset("synthetic", {str(data_dir)!r}, progress=False, **{MINI!r})
    """)
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert list(data_dir.rglob("incomplete.*")) and not _prepared_dirs(data_dir)
    left = sorted(p.name for p in data_dir.iterdir())
    assert left[0].startswith(".bigsmall_synthetic-") and left[0].endswith(".lock"), left  # the killed run's lock
    builder = prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    assert builder.is_prepared() and len(_prepared_dirs(data_dir)) == 1
    # The rebuild removed what the killed build left: its incomplete.* and download folders, its lock file.
    assert not list(data_dir.rglob("incomplete.*")) and sorted(p.name for p in data_dir.iterdir()) == [
        "bigsmall_synthetic"]


def test_prepare_cli_unknown_dataset_lists_valid_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        prepare_cli.main(["--dataset", "imagenet", "--data-dir", str(tmp_path / "d")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown dataset 'imagenet'; valid: synthetic, bp4d_plus, ubfc_rppg, pure, generic"]
    assert not (tmp_path / "d" / "bigsmall_imagenet").exists()


def test_prepare_cli_reuses_a_built_dataset_and_prints_json(tiny_synthetic_dataset, capsys):
    data_dir, builder = tiny_synthetic_dataset
    args = ["--dataset", "synthetic", "--data-dir", str(data_dir), "--no-progress"]
    for key, value in TINY_SYNTHETIC.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    prepare_cli.main(args)
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == builder.builder_config.name and out["dataset"] == "bigsmall_synthetic"
    assert {s: v["clips"] for s, v in out["splits"].items()} == {
        s: builder.info.splits[s].num_examples for s in builder.info.splits}
    assert out["bytes_per_frame"] > 0


def test_prepare_cli_bad_setting_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        prepare_cli.main(["--data-dir", str(tmp_path), "--set", "colour=red"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bigsmall_synthetic: unknown setting 'colour'")


@pytest.mark.parametrize("where", ["/proc/data", "a_file/data"])
def test_prepare_into_a_place_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        prepare_cli.main(["--data-dir", where, "--n-subjects", "4", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {where}: the data directory cannot be"), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_open_prepared_opens_the_tiny_dataset_by_config_or_from_disk(tiny_synthetic_dataset):
    """The dataset built by the fixture loads both ways, with its config name, version and clips unchanged."""
    data_dir, built = tiny_synthetic_dataset
    cfg = registry.make_config("synthetic", **TINY_SYNTHETIC)
    assert cfg.name == built.builder_config.name and cfg.name.startswith("default-")
    by_config = prepare.open_prepared("synthetic", data_dir, cfg)
    from_disk = prepare.open_prepared("bigsmall_synthetic", data_dir)  # the only config there
    named = prepare.open_prepared("synthetic", data_dir, cfg.name)
    assert prepare.find_prepared("synthetic", data_dir) == built.data_path
    for builder in (by_config, from_disk, named):
        assert (builder.name, str(builder.version), builder.builder_config.name) == \
            ("bigsmall_synthetic", "1.5.0", cfg.name)
        assert {s: i.num_examples for s, i in builder.info.splits.items()} == \
            {s: i.num_examples for s, i in built.info.splits.items()}
        record = tb.data_source(builder, "test")[0]
        np.testing.assert_array_equal(record["big"], tb.data_source(built, "test")[0]["big"])


def test_open_prepared_never_builds(tmp_path):
    with pytest.raises(UserError, match="no prepared bigsmall_synthetic dataset"):
        prepare.open_prepared("synthetic", tmp_path)
    with pytest.raises(UserError, match="is not built"):
        prepare.open_prepared("synthetic", tmp_path, registry.make_config("synthetic", **MINI))
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        prepare.open_prepared("nope", tmp_path)
    assert not list(tmp_path.iterdir())

