"""What a training workdir may hold, checked before a run starts, and the leftovers of a killed run.

A run writes only into a workdir that is new, empty, or one of its own runs: it holds the ``config.json`` a run
wrote and nothing but what runs write (`is_run_file`). Anything else (a ``metrics.json`` or plots of
another command, unrelated files) is refused before any work starts, since training would overwrite or
delete it (``model/`` is replaced at the end). A workdir of a run with another config is refused too
(`config_differences`): only the same run resumes there.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path

from bigsmall_jax.cli import check_output_dir
from bigsmall_jax.errors import file_error
from bigsmall_jax.files import PROBE_NAME, TEMPORARY_NAME, remove_temporaries
from bigsmall_jax.train.config import config_differences
from bigsmall_jax.train.workdir_lock import LOCK_NAME

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
# Every name a run writes at the top of its workdir (see ``python -m bigsmall_jax.train --help``).
RUN_FILES = (CONFIG_NAME, LOCK_NAME, "checkpoints", "metrics.jsonl", "loss_curves.png", "best", "model",
             "metrics.json", "tensorboard", "test_*.png")


def is_run_file(name: str) -> bool:
    """Whether a run writes a workdir entry of this name (`RUN_FILES`), or a temporary one of it."""
    match = TEMPORARY_NAME.match(name)
    target = match["name"] if match else name
    if match and target == PROBE_NAME:  # another process of this run checking the workdir at the same moment
        return True
    return any(fnmatch.fnmatchcase(target, pattern) for pattern in RUN_FILES)


def _check_config(workdir: Path, config_json: dict) -> None:
    """Refuses a workdir whose config.json differs from this run's (`config_differences`)."""
    try:
        saved = json.loads((workdir / CONFIG_NAME).read_text())
        diffs = config_differences(saved, config_json) if isinstance(saved, dict) else ["(not a JSON object)"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        diffs = ["(config.json unreadable)"]
    if diffs:
        raise file_error(workdir, f"holds a run with a different config (keys {', '.join(diffs)}); use another "
                                  "--workdir, or the same config to resume it")


def check_workdir(workdir: Path, config_json: dict) -> None:
    """Checks, before any work, that a run of `config_json` may write `workdir` (see the module docstring).

    Raises:
      UserError: `workdir` is a file or cannot be created or written (read-only, under a file, ``/proc``); it
        holds files that no run wrote; or it holds a run of another config.
    """
    check_output_dir(workdir, "--workdir")
    if not workdir.is_dir():
        return
    entries = sorted(p.name for p in workdir.iterdir())
    foreign = [name for name in entries if not is_run_file(name)]
    if not foreign and entries and CONFIG_NAME not in entries and any(
            not TEMPORARY_NAME.match(name) and name != LOCK_NAME for name in entries):
        foreign = [name for name in entries if name != LOCK_NAME]  # run-like names, but no run's config.json
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise file_error(workdir, f"holds files no training run wrote ({shown}); training would overwrite or "
                                  "delete them: use a new or empty --workdir")
    if CONFIG_NAME in entries:
        _check_config(workdir, config_json)


def remove_leftovers(workdir: Path) -> None:
    """Removes the temporary files a killed run left in `workdir` (call it holding the workdir lock)."""
    removed = remove_temporaries(workdir, is_run_file)
    if removed:
        log.warning("%s: removed %s, left by an interrupted run", workdir, ", ".join(removed))
