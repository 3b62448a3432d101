"""What a run logs: ``metrics.jsonl``, TensorBoard scalars (when tensorboardX is installed), loss curves."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigsmall_jax.evaluation import plots
from bigsmall_jax.files import write_text_atomic

LOSS_KEYS = ("step", "train_loss", "train_loss_au", "train_loss_bvp", "train_loss_resp", "val_loss",
             "val_loss_au", "val_loss_bvp", "val_loss_resp")


class MetricsLog:
    """``metrics.jsonl`` (one JSON object per line: a step's or a validation's metrics), written by process 0.

    Args:
      path: the file.
      enabled: False on other processes (nothing is read or written).
      resume_step: records of later steps (logged after the checkpoint the run resumes from, so run again)
        are dropped from an existing file.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path = path
        self.enabled = enabled
        self.records: list[dict] = []
        if enabled and path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if int(rec.get("step", 0)) <= resume_step:
                    self.records.append(rec)
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: Mapping[str, Any]) -> None:
        """Appends one record (NumPy scalars as floats)."""
        if not self.enabled:
            return
        record = {k: (float(v) if isinstance(v, np.floating | np.integer | float) and not isinstance(v, bool)
                      else v) for k, v in record.items()}
        self.records.append(dict(record))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def tensorboard_writer(logdir: Path):
    """A TensorBoard SummaryWriter when tensorboardX is installed, else None (optional)."""
    try:
        from tensorboardX import SummaryWriter  # type: ignore[import-not-found]
    except ImportError:
        return None
    return SummaryWriter(str(logdir))


def plot_losses(records: Sequence[Mapping], path_png: Path) -> Path | None:
    """Loss curves PNG from the metrics.jsonl records (`bigsmall_jax.evaluation.plots.plot_loss_curves`);
    None when no record has a loss."""
    rows = [{k: r[k] for k in LOSS_KEYS if k in r} for r in records]
    rows = [r for r in rows if len(r) > 1]
    if not rows:
        return None
    return plots.plot_loss_curves(rows, path_png, title="BigSmall training losses")
