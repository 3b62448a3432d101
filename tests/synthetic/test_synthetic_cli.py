"""``python -m bigsmall_jax.synthetic``: the dataset folder, and one-line errors for bad settings."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys

import imageio
import pytest

from bigsmall_jax.synthetic.cli import main


def test_cli_writes_videos_labels_and_plots(tmp_path, capsys):
    out = tmp_path / "synth"
    umask = os.umask(0o027)  # not the usual 0o022, so a file that ignores the umask is seen
    try:
        main(["--out", str(out), "--n-subjects", "3", "--videos-per-subject", "1", "--duration", "0.6",
              "--frame-size", "64", "--set", "noise_std=1.5"])
    finally:
        os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes.values()) == {0o640}, modes  # mp4s like the CSVs and PNGs: 0o666 minus the umask
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"S0{i}_V0.{e}" for i in range(3) for e in ("mp4", "csv")]
                           + ["contact_sheet.png", "labels.png", "splits.csv", "subjects.csv"])
    assert imageio.v3.imread(out / "contact_sheet.png").shape[0] > 100
    assert '"videos": 3' in capsys.readouterr().out
    with open(out / "subjects.csv", newline="") as f:
        assert [r["subject"] for r in csv.DictReader(f)] == ["S00", "S01", "S02"]


def test_cli_bad_setting_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x"), "--set", "no_such_key=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no_such_key" in err[0]
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "y"), "--n-subjects", "0"])
    assert e.value.code == 2
    assert not (tmp_path / "y").exists()


def test_module_entry_point_and_light_package_import(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "bigsmall_jax.synthetic", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0 and "--frame-size" in out.stdout and "--set" in out.stdout
    # The package (used by dataset workers) does not pull in matplotlib; only the folder writer does.
    code = "import sys; from bigsmall_jax import synthetic; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
