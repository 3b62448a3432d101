"""`python -m bigsmall_jax.benchmark --deploy`: ONNX Runtime next to JAX, and the exported files' sizes."""

from __future__ import annotations

import json

import pytest

from bigsmall_jax.benchmark.__main__ import main
from bigsmall_jax.benchmark.deploy import format_deploy_table, single_task_sum
from bigsmall_jax.model import SINGLE_TASK_VARIANTS


def test_quick_deploy_run(tmp_path, capsys):
    out = tmp_path / "deploy.json"
    main(["--deploy", "--models", "small_resp", "--batch", "2", "--repeats", "2", "--output", str(out)])
    result = json.loads(out.read_text())
    m = result["models"]["small_resp"]
    assert m["params"] == 701_697 and m["n_segment"] == 3
    # Both files hold the float32 weights and little else.
    for k in ("onnx_bytes", "stablehlo_bytes"):
        assert 4 * m["params"] < m[k] < 4 * m["params"] + 200_000, k
    for k in ("onnx_latency_ms", "jax_latency_ms", "onnx_frames_per_s", "jax_frames_per_s"):
        assert m[k] > 0, k
    assert "single_task_sum" not in result
    assert "small_resp" in capsys.readouterr().out.splitlines()[-1]


def test_single_task_sum_closed_form():
    models = {n: {"params": p, "onnx_bytes": 4 * p, "stablehlo_bytes": 4 * p + 1, "onnx_latency_ms": ms,
                  "jax_latency_ms": 2 * ms, "onnx_frames_per_s": fps, "jax_frames_per_s": fps / 2}
              for n, p, ms, fps in zip(SINGLE_TASK_VARIANTS, (10, 20, 30), (1.0, 2.0, 3.0), (100.0, 200.0, 400.0),
                                       strict=True)}
    s = single_task_sum(models)
    assert s["params"] == 60 and s["onnx_bytes"] == 240 and s["stablehlo_bytes"] == 243
    assert s["onnx_latency_ms"] == 6.0 and s["jax_latency_ms"] == 12.0
    # 1 frame takes 1/100 + 1/200 + 1/400 s = 7/400 s
    assert s["onnx_frames_per_s"] == pytest.approx(400 / 7) and s["jax_frames_per_s"] == pytest.approx(200 / 7)
    table = format_deploy_table({"device": "cpu: x", "onnxruntime": "1", "jax": "0", "batch_clips": 2,
                                 "load_avg": {"before": None}, "models": models, "single_task_sum": s})
    assert [line.split()[0] for line in table.splitlines()[3:]] == [*SINGLE_TASK_VARIANTS, "single_task_sum"]
