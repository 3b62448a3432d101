"""The Colab TPU notebook runs top to bottom on a CPU with its tiny configuration."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "bigsmall_tpu.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.slow
def test_notebook_runs_headless_with_tiny_config(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("BIGSMALL_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("BIGSMALL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BIGSMALL_WORKDIR", str(tmp_path / "run"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    repo = NOTEBOOK.parent.parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(repo)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "backend: cpu" in text
    assert "hr_mae" in text and "au_f1_mean" in text
    assert "bigsmall" in text and "GFLOPs/frame" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was shown"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"hr_mae", "rr_mae", "au_f1_mean"} <= set(metrics)
    assert (tmp_path / "run" / "model" / "bigsmall_config.json").is_file()
