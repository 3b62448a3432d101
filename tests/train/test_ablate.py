"""``python -m bigsmall_jax.ablate`` end to end on the tiny dataset: 2 variants x 2 seeds, each an ordinary
training run in its own workdir; the table's mean ± std against the runs' own metrics.json; a rerun that
trains nothing; a finished run of another config refused."""

import json
import statistics

import pytest
from cli_checks import expect_nothing_changed
from train_helpers import tiny_overrides

from bigsmall_jax import ablate
from bigsmall_jax.model import ModelConfig, build_model
from bigsmall_jax.model.flops import forward_cost

VARIANTS = ("BSSFWTSM_BiDirLatConn", "small_bvp")  # a class name; a single-task model (no AU head)


@pytest.fixture(autouse=True)
def _no_cpu_presets(monkeypatch):
    monkeypatch.setenv("BIGSMALL_CPU_PRESETS", "0")  # JAX has started: the presets could not apply


def _argv(workdir, data_dir, builder, *extra):
    return ["--variants", ",".join(VARIANTS), "--seeds", "2", "--workdir", str(workdir), "--speed-batch", "1",
            "--speed-repeats", "1", *tiny_overrides(data_dir, builder, "train.num_epochs=1",
                                                    "train.steps_per_epoch=2", "loss.bvp_start=0.5",
                                                    *extra)]


def test_ablation_trains_each_run_once_and_tabulates_mean_and_std(tiny_synthetic_dataset, tmp_path, capsys,
                                                                  monkeypatch):
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "ablation"
    ablate.main(_argv(workdir, data_dir, builder, "--list-runs"))
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 4 and all(c.startswith("python -m bigsmall_jax.train --config synthetic") for c in commands)
    assert "'model.lateral=\"both\"'" in commands[0] and "seed=1" in commands[1]

    ablate.main(_argv(workdir, data_dir, builder))
    printed = capsys.readouterr().out
    table = json.loads((workdir / "ablation.json").read_text())
    assert list(table["variants"]) == ["bigsmall_bidir", "small_bvp"]
    for name in table["variants"]:
        row = table["variants"][name]
        runs = [json.loads((workdir / name / f"seed{k}" / "metrics.json").read_text()) for k in (0, 1)]
        assert [r["run"]["steps"] for r in runs] == [2, 2]
        saved = json.loads((workdir / name / "seed1" / "config.json").read_text())
        assert saved["seed"] == 1
        config = ModelConfig.from_dict(saved["model"])
        assert row["gflops_per_clip"] == pytest.approx(forward_cost(build_model(config))["flops_per_clip"] / 1e9)
        assert row["seeds"] == 2 and row["infer_frames_per_s"] > 0
        for key in ("hr_mae", "hr_rmse", "hr_pearson", "rr_mae", "au_f1_mean"):
            values = [r.get(key) for r in runs]
            if any(v is None for v in values):
                assert key not in row["metrics"]
                continue
            stat = row["metrics"][key]
            assert stat["mean"] == pytest.approx(statistics.mean(values))
            assert stat["std"] == pytest.approx(statistics.stdev(values))
    bidir, small = table["variants"]["bigsmall_bidir"], table["variants"]["small_bvp"]
    assert {"au_f1_mean", "hr_mae", "rr_mae"} <= set(bidir["metrics"])
    assert "au_f1_mean" not in small["metrics"] and "hr_mae" in small["metrics"]
    # A single-task model trains its task from step 0, whatever curriculum the other variants are given.
    assert json.loads((workdir / "small_bvp" / "seed0" / "config.json").read_text())["loss"]["bvp_start"] == 0.0
    assert json.loads((workdir / "bigsmall_bidir" / "seed0" / "config.json").read_text())["loss"]["bvp_start"] == 0.5
    assert "| bigsmall_bidir (2 seeds) |" in printed and "| small_bvp (2 seeds) |" in printed
    assert (workdir / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A rerun trains nothing and writes the same table.
    monkeypatch.setattr(ablate, "train_run", lambda argv: pytest.fail(f"retrained {argv}"))
    ablate.main(_argv(workdir, data_dir, builder))
    assert json.loads((workdir / "ablation.json").read_text())["variants"] == table["variants"]
    # Finished runs made with another config are not passed off as this one's.
    expect_nothing_changed(capsys, ablate.main, _argv(workdir, data_dir, builder, "optim.lr=0.5"), workdir,
                           "holds a run with a different config (keys optim.lr)")
