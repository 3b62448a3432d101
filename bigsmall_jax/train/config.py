"""Training configs: loading ``configs/NAME.py``, ``dotted.key=value`` overrides, validation, resume checks.

A config is an `ml_collections.ConfigDict` (sections ``model``, ``dataset``, ``train``, ``loss``, ``optim``;
see ``configs/common.py``). It describes the experiment only: run-time settings (processes, test hooks)
are arguments of `bigsmall_jax.train.loop.train_and_evaluate` and flags of the command line.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from bigsmall_jax.cli import split_key_value
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.files import to_json
from bigsmall_jax.model import ModelConfig
from bigsmall_jax.train import losses as losses_lib
from bigsmall_jax.train import optim as optim_lib
from bigsmall_jax.train.state import INITS

# The repository's configs/ (a checkout or an editable install), else the copy a wheel installs.
_REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
_PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIGS_DIR = _REPO_CONFIGS if (_REPO_CONFIGS / "common.py").is_file() else _PACKAGED_CONFIGS
DEFAULT_CONFIG = "synthetic"
# Keys that may differ between a run and its resumption: cadence of logs and checkpoints, the eval batch
# size and where the data lives. They do not change the trained numbers.
RESUME_FREE_KEYS = (
    "train.log_every_steps", "train.checkpoint_every_steps", "train.keep_checkpoints", "train.eval_batch_clips",
    "dataset.data_dir", "dataset.source_dir",
)
# Keys a workdir's saved config.json may hold that configs do not (test hooks and process settings, which
# are arguments and flags of the trainer); ignored when only the saved config has them, so that workdir resumes.
REMOVED_KEYS = (
    "train.stop_after_steps", "train.debug_nan_step", "multihost", "coordinator_address", "num_processes",
    "process_id",
)


def _config_path(spec: str | None) -> Path:
    """The file of a config given as a path (``configs/x.py``) or a name (``x``) of ``configs/``."""
    spec = spec or DEFAULT_CONFIG
    path = Path(spec)
    if path.suffix != ".py" and os.sep not in spec and "/" not in spec:
        path = CONFIGS_DIR / f"{spec}.py"
    if not path.is_file():
        names = sorted(p.stem for p in CONFIGS_DIR.glob("*.py") if not p.stem.startswith("_")
                       and p.stem != "common") if CONFIGS_DIR.is_dir() else []
        raise file_error(path, f"no such config file; named configs in {CONFIGS_DIR}: {', '.join(names) or 'none'}")
    return path.resolve()


def _exec_config_file(path: Path):
    """Runs a config file as a module (its package, e.g. ``configs``, importable) and returns the module."""
    root = str(path.parent.parent)
    if path.parent == _PACKAGED_CONFIGS:  # installed from a wheel: `from configs import common` is this package
        sys.modules.setdefault("configs", importlib.import_module("bigsmall_jax.configs"))
    elif (path.parent / "__init__.py").is_file() and root not in sys.path:
        sys.path.insert(0, root)
    module_spec = importlib.util.spec_from_file_location(f"_bigsmall_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as e:  # a broken config file: name it
        raise file_error(path, f"cannot load the config: {type(e).__name__}: {e}") from None
    return module


@functools.lru_cache(maxsize=1)
def _required_keys() -> frozenset[str]:
    """The dotted keys of the base config (``configs/common.py``) every config must have (``dataset.settings``
    aside: its keys are free)."""
    base = _exec_config_file(CONFIGS_DIR / "common.py").base_config()
    return frozenset(k for k in flat_keys(base) if not k.startswith("dataset.settings"))


@functools.lru_cache(maxsize=1)
def _base_values() -> dict[str, Any]:
    """{dotted key: value} of the base config's leaves that have a type to check (None aside)."""
    base = _exec_config_file(CONFIGS_DIR / "common.py").base_config()
    out = {}
    for key in _required_keys():
        value = base
        for part in key.split("."):
            value = value[part]
        if value is not None:
            out[key] = value
    return out


def _type_problem(value: Any, like: Any) -> str | None:
    """What is wrong with `value` where the base config has `like` (its kind: bool, int, number, string,
    list), or None."""
    if isinstance(like, bool):
        ok, kind = isinstance(value, bool | np.bool_), "true or false"
    elif isinstance(like, numbers.Integral):
        ok, kind = isinstance(value, numbers.Integral) and not isinstance(value, bool), "an integer"
    elif isinstance(like, numbers.Real):
        ok, kind = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
    elif isinstance(like, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(like, list | tuple):
        ok, kind = isinstance(value, list | tuple), "a list"
    else:
        return None
    return None if ok else f"must be {kind}, got {value!r}"


def check_value_types(config: ml_collections.ConfigDict, source: object) -> None:
    """Raises `UserError` naming `source` and the key for a value whose type differs from the base config's
    (``configs/common.py``): a string or float where an integer belongs would otherwise fail deep inside."""
    for key, like in sorted(_base_values().items()):
        value = config
        for part in key.split("."):
            value = value[part]
        problem = _type_problem(value, like)
        if problem is not None:
            raise file_error(source, f"{key} {problem}")


def load_config(spec: str | None = None) -> ml_collections.ConfigDict:
    """Runs ``get_config()`` of a config file (path or name of ``configs/``; None: the default).

    The file's package (e.g. ``configs``) is made importable, so configs can share a module.

    Raises:
      UserError: naming the file: it is missing or fails to run, its ``get_config()`` fails or returns
        something else than a ConfigDict with every key of the base config (``configs/common.py``).
    """
    path = _config_path(spec)
    module = _exec_config_file(path)
    if not hasattr(module, "get_config"):
        raise file_error(path, "a config file must define get_config()")
    try:
        config = module.get_config()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the file's code raises: name the file
        raise file_error(path, f"get_config() failed: {type(e).__name__}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise file_error(path, f"get_config() returned {type(config).__name__}, not an ml_collections.ConfigDict")
    missing = sorted(_required_keys() - set(flat_keys(config)))
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise file_error(path, f"get_config() lacks the key(s) {shown}; derive the config from "
                               f"{CONFIGS_DIR / 'common.py'}'s base_config()")
    check_value_types(config, path)
    return config


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a config, e.g. ``["model.n_segment", "optim.lr", ...]``."""
    keys = []
    for k, v in config.items():
        if isinstance(v, ml_collections.ConfigDict) and (len(v) or k != "settings"):
            keys.extend(flat_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return sorted(keys)


def _unknown_key(config: ml_collections.ConfigDict, key: str) -> UserError:
    return UserError(f"unknown config key {key!r}; valid keys: {', '.join(flat_keys(config))}")


def _parent_node(config: ml_collections.ConfigDict, key: str) -> ml_collections.ConfigDict:
    """The section holding the leaf of a dotted key (``dataset.settings`` ends the walk: its keys are free)."""
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(child, ml_collections.ConfigDict):
            raise _unknown_key(config, key)
        node = child
        if ".".join(parts[: i + 1]) == "dataset.settings":
            break
    return node


def _set_override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """Sets one dotted key (see `apply_overrides`)."""
    parts = key.split(".")
    node, leaf = _parent_node(config, key), parts[-1]
    free = key.startswith("dataset.settings.") and len(parts) == 3
    if leaf not in node and not free:
        raise _unknown_key(config, key)
    current = node.get(leaf)
    if isinstance(current, ml_collections.ConfigDict) and key != "dataset.settings":
        raise UserError(f"config key {key!r} is a section; set its keys: "
                        f"{', '.join(k for k in flat_keys(config) if k.startswith(key + '.'))}")
    if isinstance(current, tuple) and isinstance(value, list | int | float) and not isinstance(value, bool):
        value = tuple(value) if isinstance(value, list) else (value,)
    try:
        node[leaf] = value
    except (TypeError, ValueError) as e:
        raise UserError(f"config key {key!r}: cannot set {value!r}: {e}") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Applies ``dotted.key=value`` overrides in place (values by `bigsmall_jax.cli.parse_literal`).

    New keys are refused (`UserError` listing the valid ones), except under ``dataset.settings``, whose
    keys the dataset builder checks itself. Returns the config.
    """
    for item in overrides:
        key, value = split_key_value(item)
        _set_override(config, key, value)
    return config


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """The `ModelConfig` of a training config's ``model`` section."""
    return ModelConfig.from_dict(config.model.to_dict(), source="config section 'model'")


def _validate_optim_and_loss(config: ml_collections.ConfigDict, mc: ModelConfig) -> None:
    if config.optim.schedule not in optim_lib.SCHEDULES:
        raise UserError(f"optim.schedule {config.optim.schedule!r} is not one of {optim_lib.SCHEDULES}")
    for name in ("lr", "b1", "b2", "eps", "weight_decay"):
        if not math.isfinite(float(config.optim[name])) or float(config.optim[name]) < 0:
            raise UserError(f"optim.{name} must be a finite number >= 0, got {config.optim[name]!r}")
    for task in losses_lib.TASKS:
        start = float(config.loss[f"{task}_start"])
        if not 0.0 <= start < 1.0:
            raise UserError(f"loss.{task}_start must be a fraction of the training steps in [0, 1), got {start}")
    pw = tuple(config.loss.au_pos_weight)
    if pw and mc.n_au and len(pw) != mc.n_au:
        raise UserError(f"loss.au_pos_weight has {len(pw)} values but the model has {mc.n_au} AUs")


def validate_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """Checks a training config; returns its model config. Raises `UserError` naming the bad key."""
    mc = model_config(config)
    t = config.train
    if t.init not in INITS:
        raise UserError(f"train.init must be one of {INITS}, got {t.init!r}")
    if t.select not in ("last", "best"):
        raise UserError(f"train.select must be 'last' or 'best', got {t.select!r}")
    if t.select == "best" and not config.dataset.val_split:
        raise UserError("train.select='best' needs a validation split (dataset.val_split)")
    if int(t.batch_clips) < 1 or int(t.num_epochs) < 1:
        raise UserError(f"train.batch_clips and train.num_epochs must be >= 1, got {t.batch_clips}, {t.num_epochs}")
    # Read only by the evaluation after the last epoch: checked here so that a bad value fails before training.
    if isinstance(t.eval_batch_clips, bool) or not isinstance(t.eval_batch_clips, int) or t.eval_batch_clips < 1:
        raise UserError(f"train.eval_batch_clips must be an integer >= 1 (clips per evaluation forward pass), "
                        f"got {t.eval_batch_clips!r}")
    _validate_optim_and_loss(config, mc)
    if not 0 <= int(config.seed) < 2**31:
        raise UserError(f"seed must be in [0, 2**31), got {config.seed}")
    return mc


def config_to_json(config: ml_collections.ConfigDict) -> dict:
    """A JSON-able dict of the config (tuples as lists)."""
    return json.loads(to_json(config.to_dict()))


def _flat_dict(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty mapping stays a leaf)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: Mapping, current: Mapping) -> list[str]:
    """Keys whose values differ between a workdir's saved config JSON dict and the current one.

    `RESUME_FREE_KEYS` never count; `REMOVED_KEYS` do not count when only the saved config has them.
    """
    a, b = _flat_dict(saved), _flat_dict(current)
    a = {k: v for k, v in a.items() if k not in REMOVED_KEYS or k in b}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUME_FREE_KEYS)
