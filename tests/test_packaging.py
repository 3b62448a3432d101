"""What a non-editable install needs: configs/ and the BP4D+ split files ship inside the package.

The repository keeps them at the top (configs as data); pyproject.toml maps them to
``bigsmall_jax/configs`` and ``bigsmall_jax/splits`` in the wheel, and the code falls back to those copies
when it does not run from a checkout. The test lays the package out as a wheel installs it, in a temporary
site folder, and runs it from elsewhere.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_pyproject_ships_configs_and_splits():
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = tool["package-dir"]
    assert {"bigsmall_jax", "bigsmall_jax.configs", "bigsmall_jax.splits"} <= set(tool["packages"])
    assert dirs == {"bigsmall_jax.configs": "configs", "bigsmall_jax.splits": "data/bp4d_plus_splits"}
    assert (REPO / dirs["bigsmall_jax.configs"] / "common.py").is_file()
    assert sorted(p.name for p in (REPO / dirs["bigsmall_jax.splits"]).glob("*.csv")) == sorted(
        f"Split{k}_{part}_Subjects.csv" for k in (1, 2, 3) for part in ("Test", "Train"))
    assert tool["package-data"]["bigsmall_jax.splits"] == ["*.csv"]


def test_pyproject_lists_every_package():
    """A wheel holds only the listed packages: every folder of bigsmall_jax/ with an __init__.py is listed."""
    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "bigsmall_jax").rglob("__init__.py")}
    assert on_disk and on_disk <= packages, sorted(on_disk - packages)


def test_installed_layout_finds_its_configs_and_splits(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(REPO / "bigsmall_jax", site / "bigsmall_jax", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs", site / "bigsmall_jax" / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "data" / "bp4d_plus_splits", site / "bigsmall_jax" / "splits")
    code = """
import json, bigsmall_jax
from bigsmall_jax.datasets import readers
from bigsmall_jax.train import config
names = sorted(p.stem for p in config.CONFIGS_DIR.glob("*.py") if p.stem not in ("__init__", "common"))
configs = {n: config.load_config(n).dataset.name for n in names}
folds = {k: len(readers.bp4d_fold_subjects(k)["test"]) for k in (1, 2, 3)}
print(json.dumps({"package": bigsmall_jax.__file__, "configs_dir": str(config.CONFIGS_DIR),
                  "splits_dir": str(readers.SPLITS_DIR), "configs": configs, "folds": folds}))
"""
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["package"].startswith(str(site))
    assert got["configs_dir"] == str(site / "bigsmall_jax" / "configs")
    assert got["splits_dir"] == str(site / "bigsmall_jax" / "splits")
    assert got["configs"]["synthetic"] == "synthetic" and got["configs"]["bp4d_fold1"] == "bp4d_plus"
    assert set(got["configs"]) == {"synthetic", "bp4d_fold1", "bp4d_fold2", "bp4d_fold3", "big_au", "small_bvp",
                                   "small_resp"}
    assert all(n > 0 for n in got["folds"].values())
