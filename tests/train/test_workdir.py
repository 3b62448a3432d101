"""What a training workdir may be (checked before any work), bad configs that create nothing, and the leftovers
of a killed run; the command line's one ``error:`` line for each."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from cli_checks import expect_nothing_changed
from train_helpers import subprocess_env, tiny_overrides

from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.train import optim
from bigsmall_jax.train.__main__ import run
from bigsmall_jax.train.checkpointing import checkpoint_manager, save_train_checkpoint
from bigsmall_jax.train.config import apply_overrides, load_config, model_config
from bigsmall_jax.train.loop import Hooks, train_and_evaluate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.workdir import is_run_file

train_main = cli_main(run)  # main() without its process-wide CPU presets
# Overrides of a valid run whose data is never reached: every case below fails before the dataset is opened.
NO_DATA = ["dataset.data_dir='/nonexistent/data'", "model.dense_units=8"]


def _tiny_config(data_dir, builder, *extra):
    return apply_overrides(load_config("synthetic"), tiny_overrides(data_dir, builder, *extra))


@pytest.mark.parametrize("workdir, needle", [
    ("a_file", "--workdir exists and is not a directory"),
    ("a_file/run", "--workdir cannot be created"),
    ("/proc/run", "--workdir cannot be written"),
])
def test_workdir_that_cannot_be_written_is_refused_first(tmp_path, capsys, monkeypatch, workdir, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("keep")
    expect_nothing_changed(capsys, train_main, ["--workdir", workdir, *NO_DATA], tmp_path, workdir, needle)


def test_data_dir_that_cannot_be_written_is_refused_before_the_workdir_is_made(tmp_path, capsys):
    expect_nothing_changed(capsys, train_main, ["--workdir", tmp_path / "w", "dataset.data_dir='/proc/data'",
                                                "model.dense_units=8"], tmp_path,
                           "/proc/data: the data directory cannot be written")


@pytest.mark.parametrize("files", [
    {"metrics.json": "{}", "test_au_f1.png": "png"},  # another command's results, no run's config.json
    {"config.json": "{}", "notes.txt": "mine"},  # a run's config beside a file no run writes
    {"data.csv": "a,b"},
])
def test_workdir_holding_files_no_run_wrote_is_refused(tmp_path, capsys, files):
    workdir = tmp_path / "w"
    workdir.mkdir()
    for name, text in files.items():
        (workdir / name).write_text(text)
    expect_nothing_changed(capsys, train_main, ["--workdir", workdir, *NO_DATA], tmp_path, str(workdir),
                           "holds files no training run wrote")


@pytest.mark.parametrize("override, needle", [
    ("model.dense_units=0", "dense_units must be >= 1, got 0"),
    ("model.dense_units=-1", "dense_units must be >= 1, got -1"),
    ("model.dropout=(2.0, 0.5, 0.5)", "dropout rates must lie in [0, 1)"),
    ("model.fold_div=0", "fold_div must be >= 2"),
])
def test_bad_model_values_create_nothing(tmp_path, capsys, override, needle):
    expect_nothing_changed(capsys, train_main, ["--workdir", tmp_path / "w", override], tmp_path, needle)


@pytest.mark.parametrize("body, needle", [
    ("def get_config():\n    raise RuntimeError('boom')", "get_config() failed: RuntimeError: boom"),
    ("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict()",
     "get_config() lacks the key(s) dataset.config"),
    ("from configs.common import base_config\ndef get_config():\n    c = base_config()\n    del c.optim\n"
     "    return c", "get_config() lacks the key(s) optim."),
    # ml_collections refuses a value of another type set on a ConfigDict; one built from a plain dict is checked
    # against the base config's types.
    ("from configs.common import base_config\ndef get_config():\n    c = base_config()\n"
     "    c.train.batch_clips = '16'\n    return c", "get_config() failed: TypeError: Could not override field"),
    *[(f"import ml_collections\nfrom configs.common import base_config\ndef get_config():\n"
       f"    d = base_config().to_dict()\n    d[{section!r}][{key!r}] = {value!r}\n"
       f"    return ml_collections.ConfigDict(d)", needle)
      for section, key, value, needle in [
          ("train", "batch_clips", "16", "train.batch_clips must be an integer, got '16'"),
          ("model", "n_segment", 3.5, "model.n_segment must be an integer, got 3.5"),
          ("optim", "lr", "fast", "optim.lr must be a number, got 'fast'")]],
])
def test_broken_config_module_is_named(tmp_path, capsys, body, needle):
    path = tmp_path / "mine.py"
    path.write_text(body + "\n")
    expect_nothing_changed(capsys, train_main, ["--config", path, "--workdir", tmp_path / "w"], tmp_path,
                           str(path), needle)


def test_corrected_command_runs_after_a_refused_one(tiny_synthetic_dataset, tmp_path, capsys):
    """The refused command made no workdir, so the corrected one does not meet a half-made run."""
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    with pytest.raises(SystemExit):
        train_main(["--workdir", str(workdir), *tiny_overrides(data_dir, builder, "model.dense_units=0")])
    assert not workdir.exists()
    result = train_and_evaluate(_tiny_config(data_dir, builder), workdir, hooks=Hooks(stop_after_steps=0))
    assert result.stopped_early and (workdir / "config.json").is_file()


def test_a_killed_runs_temporaries_are_removed_at_the_next_start(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    config = _tiny_config(data_dir, builder)
    train_and_evaluate(config, workdir, hooks=Hooks(stop_after_steps=0))
    # What a run killed while exporting its model, plotting or writing its metrics leaves (files.py's names).
    (workdir / ".model.4242.0badc0de").mkdir()
    (workdir / ".model.4242.0badc0de" / "bigsmall_config.json").write_text("{}")
    (workdir / ".best.4242.0badc0de.old").mkdir()
    for name in (".loss_curves.png.4242.0badc0de.png", ".metrics.json.4242.0badc0de.tmp",
                 ".test_hr_bland_altman.png.4242.0badc0de.png"):
        (workdir / name).write_text("partial")
    assert all(is_run_file(p.name) for p in workdir.iterdir())  # so the workdir is not refused as foreign
    train_and_evaluate(config, workdir, hooks=Hooks(stop_after_steps=0))
    assert sorted(p.name for p in workdir.iterdir()) == [".lock", "checkpoints", "config.json"]


# Resumes three times in one process (the restore failure used to leave tensorstore reads pending, which
# printed "Event loop is closed" tracebacks on some runs and not others), then exits as the last one did.
_RESUME = textwrap.dedent("""
    import sys
    from bigsmall_jax.train.__main__ import main
    codes = []
    for _ in range(3):
        try:
            main(sys.argv[1:])
        except SystemExit as e:
            codes.append(e.code)
    sys.exit(codes[-1] if len(set(codes)) == 1 else 99)
""")


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # subprocess fork+exec after JAX started: safe
def test_truncated_latest_checkpoint_is_one_error_line(tiny_synthetic_dataset, tmp_path):
    """The latest checkpoint's data cut short: one error line naming it and the step to fall back to, exit 2,
    and no traceback at all (bigsmall-jax's, orbax's or tensorstore's), on each of three tries."""
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    config = _tiny_config(data_dir, builder)
    train_and_evaluate(config, workdir, hooks=Hooks(stop_after_steps=0))
    from bigsmall_jax.model import build_model

    tx, _ = optim.optimizer_from_config(config.optim, 10)
    state = create_train_state(build_model(model_config(config)), tx, 0)
    manager = checkpoint_manager(workdir / "checkpoints", 3)
    progress = {"epoch": 0, "best_val": None, "best_epoch": None, "best_step": None, "finite_loss_step": -1}
    for step in (2, 4):
        save_train_checkpoint(manager, state.replace(step=step), progress, None)
    manager.close()
    data_files = sorted(p for p in (workdir / "checkpoints" / "4" / "state").rglob("d/*") if p.is_file())
    assert data_files
    for f in data_files:
        f.write_bytes(f.read_bytes()[:10])
    proc = subprocess.run([sys.executable, "-c", _RESUME, "--workdir", str(workdir),
                           *tiny_overrides(data_dir, builder)], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(BIGSMALL_CPU_PRESETS="0"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and len(set(errors)) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{workdir / 'checkpoints' / '4'}: cannot restore the training checkpoint" in errors[0]
    assert errors[0].endswith("delete it to resume from step 2") and "tensorstore_spec" not in errors[0]


def test_refused_config_json_is_named(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match=r"different config \(keys \(not a JSON object\)\)"):
        train_and_evaluate(_tiny_config(data_dir, builder), workdir, hooks=Hooks(stop_after_steps=0))


def test_run_files_are_what_runs_write():
    for name in ("config.json", ".lock", "checkpoints", "model", "best", "metrics.json", "metrics.jsonl",
                 "loss_curves.png", "test_waves_hr.png", "tensorboard", ".model.7.0badc0de",
                 ".write-probe.7.0badc0de.tmp"):  # the last: another process of a multihost run checking
        assert is_run_file(name), name
    for name in ("notes.txt", "results.json", "plot.png", ".model", ".notes.txt.7.0badc0de.tmp", "model.bak"):
        assert not is_run_file(name), name
