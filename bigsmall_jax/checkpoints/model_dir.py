"""Model checkpoints: a directory with the model's config as JSON and its variables saved by orbax.

Layout of a model checkpoint directory (written by `save_checkpoint`, by ``python -m bigsmall_jax.convert``
and, as ``WORKDIR/model``, by training)::

    DIR/bigsmall_config.json   # {"model": ModelConfig fields, "metadata": {...}}
    DIR/variables/             # orbax StandardCheckpointer: {"params": ...}

Loading never unpickles anything: orbax stores arrays with tensorstore and metadata as JSON, and the
config is plain JSON checked key by key. Every array is checked against the shapes the config implies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from bigsmall_jax.errors import file_error
from bigsmall_jax.files import atomic_directory, to_json
from bigsmall_jax.model import BigSmall, ModelConfig, abstract_variables, build_model

CONFIG_FILE = "bigsmall_config.json"
VARIABLES_DIR = "variables"


def short_reason(error: BaseException, limit: int = 240) -> str:
    """The first line of an orbax / tensorstore error, without the tensorstore spec, at most `limit` characters."""
    text = str(error).splitlines()[0] if str(error) else ""
    text = text.split(" [tensorstore_spec=")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def orbax_errors(path: str | Path, problem: str, hint: str = "") -> Iterator[None]:
    """Turns an orbax / tensorstore failure (a corrupt, truncated or unwritable checkpoint; they raise many types)
    into one `UserError`: ``<path>: <problem> (<type>: <reason>)<hint>``.

    While the block runs, orbax's worker threads do not print the traceback of such a failure (they log it on
    the "absl" logger, then the main thread raises it again): the `UserError` is the one report.
    """
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)
    try:
        yield
    except Exception as e:  # noqa: BLE001 - whatever orbax raises: the file's problem, named
        raise file_error(path, f"{problem} ({type(e).__name__}: {short_reason(e)}){hint}") from None
    finally:
        absl.setLevel(level)


def read_every_value(item_dir: str | Path) -> int:
    """Reads every stored value of an orbax checkpoint item (its OCDBT key-value store), one at a time.

    A restore reads the same values concurrently on orbax's event loop; when one read fails (a truncated or
    missing data file), orbax closes the loop while the others are still pending, and tensorstore then prints
    a "RuntimeError: Event loop is closed" traceback for each from its own threads. Reading them all first,
    synchronously, turns such damage into one exception before the restore starts. An item without an OCDBT
    manifest (another format) is left to the restore. Checkpoints here are at most tens of MB, so the extra
    read costs little.

    Returns:
      The bytes read.
    Raises:
      ValueError (tensorstore's): a value could not be read.
    """
    item_dir = Path(item_dir).absolute()
    if not (item_dir / "manifest.ocdbt").is_file():
        return 0
    import tensorstore as ts  # noqa: PLC0415 (orbax's own storage layer; only needed here)

    store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{item_dir}/"}).result()
    return sum(len(store.read(key).result().value) for key in store.list().result())


def check_variables(model: BigSmall, variables, source: str) -> None:
    """Raises `UserError` naming the first missing, extra or mis-shaped array."""
    expected = {jax.tree_util.keystr(k): v for k, v in
                jax.tree_util.tree_leaves_with_path(abstract_variables(model))}
    found = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(variables)}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        raise file_error(source, f"missing array(s) {missing} for this model config")
    if extra:
        raise file_error(source, f"unexpected array(s) {extra} for this model config")
    for key, want in expected.items():
        got = found[key]
        if tuple(np.shape(got)) != tuple(want.shape):
            raise file_error(source, f"array {key} has shape {tuple(np.shape(got))}, expected {tuple(want.shape)}")
        if not np.all(np.isfinite(np.asarray(got))):
            raise file_error(source, f"array {key} holds NaN or inf values")


def check_replaceable(path: str | Path, overwrite: bool) -> None:
    """Checks that a model checkpoint directory may be written at `path` (`save_checkpoint` calls it).

    A missing `path` is fine. With `overwrite`, an existing `path` may be replaced only when it is an empty
    directory or a model directory this project wrote: exactly ``CONFIG_FILE`` and the ``VARIABLES_DIR`` folder.

    Raises:
      UserError: `path` exists and `overwrite` is False, or it is a file, or a directory holding anything
        else than a model checkpoint.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise file_error(path, "already exists (pass overwrite=True / --overwrite to replace it)")
    if not path.is_dir():
        raise file_error(path, "exists and is not a directory; refusing to replace it with a checkpoint")
    entries = {p.name for p in path.iterdir()}
    if entries and (entries != {CONFIG_FILE, VARIABLES_DIR} or not (path / VARIABLES_DIR).is_dir()):
        foreign = sorted(entries - {CONFIG_FILE, VARIABLES_DIR}) or sorted(entries)
        raise file_error(path, f"is not a model checkpoint directory (it holds {', '.join(foreign[:5])}); "
                               "--overwrite only replaces one written by bigsmall-jax")


def check_free_space(folder: Path, n_bytes: int, target: Path) -> None:
    """Refuses, before anything is written, to write `n_bytes` of arrays (plus 1 MiB of metadata) into `folder`
    when its file system has less free space (a disk that fills during an orbax write fails less cleanly).

    Raises:
      UserError: naming `target`, the space needed and the space free.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < n_bytes + 2**20:
        raise file_error(target, f"not enough free space: the checkpoint needs {(n_bytes + 2**20) / 2**20:.1f} MiB, "
                                 f"{free / 2**20:.1f} MiB are free in {existing}")


def save_checkpoint(path: str | Path, config: ModelConfig, variables, metadata: dict[str, Any] | None = None,
                    overwrite: bool = False, process_local: bool = False) -> Path:
    """Writes a model checkpoint directory atomically (a temporary directory renamed at the end).

    Args:
      path: the directory to write.
      config: the model's config, stored in ``CONFIG_FILE`` with `metadata` (JSON, NumPy values allowed).
      variables: ``{"params": ...}`` of that model (device or host arrays).
      overwrite: replace an existing model directory at `path` (only once the new directory is complete).
      process_local: write from this process alone, without orbax's cross-process synchronisation (for
        multi-process runs in which only one process exports the model).
    Returns:
      The absolute path written.
    Raises:
      UserError: `path` cannot be written (`check_replaceable`): it exists and `overwrite` is False, or it
        is not a model directory (nor an empty one); its disk has too little free space (`check_free_space`);
        orbax fails to write it (`orbax_errors`).
    """
    path = Path(path).absolute()
    check_replaceable(path, overwrite)
    variables = jax.tree_util.tree_map(np.asarray, jax.device_get(variables))
    check_free_space(path.parent, sum(x.nbytes for x in jax.tree_util.tree_leaves(variables)), path)
    options = {}
    if process_local:
        me = jax.process_index()
        options["multiprocessing_options"] = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    with atomic_directory(path, overwrite=overwrite) as tmp:
        with orbax_errors(path, "cannot write the checkpoint"), ocp.StandardCheckpointer(**options) as ckptr:
            ckptr.save(tmp / VARIABLES_DIR, variables)
            ckptr.wait_until_finished()
        payload = {"model": config.to_dict(), "metadata": metadata or {}}
        (tmp / CONFIG_FILE).write_text(to_json(payload))
    return path


def _find_model_dir(path: Path) -> Path:
    """`path` itself if it holds a ``CONFIG_FILE``, else its ``model/`` (a training workdir's)."""
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "model" / CONFIG_FILE).is_file():  # a training workdir
        return path / "model"
    raise file_error(path, f"not a bigsmall-jax checkpoint directory (no {CONFIG_FILE}; write one with "
                           "`python -m bigsmall_jax.convert` or by training)")


def read_config(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The model config and metadata of a checkpoint directory."""
    model_dir = _find_model_dir(Path(path))
    source = model_dir / CONFIG_FILE
    try:
        payload = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise file_error(source, f"cannot read the model config: {e}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise file_error(source, "expected a JSON object with a 'model' object")
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise file_error(source, f"'metadata' must be a JSON object, got {type(metadata).__name__}")
    config = ModelConfig.from_dict(payload["model"], source=str(source))  # a bad value: UserError naming the file
    return config, dict(metadata)


def load_model_dir(path: str | Path) -> tuple[BigSmall, dict]:
    """Loads ``(model, variables)`` from a model checkpoint directory or a training workdir (its ``model/``).

    Args:
      path: a directory written by `save_checkpoint` (``convert`` or training write them), or a training
        workdir.
    Returns:
      The model and its variables (``{"params": ...}``, arrays of the dtypes `abstract_variables` names).
    Raises:
      UserError: missing directory, unreadable or unknown config, arrays missing, extra, mis-shaped or
        not finite.
    """
    path = Path(path)
    if not path.exists():
        raise file_error(path, "no such checkpoint directory")
    config, _ = read_config(path)
    model_dir = _find_model_dir(path)
    model = build_model(config)
    target = abstract_variables(model)
    with orbax_errors(model_dir / VARIABLES_DIR, "cannot restore the variables"), ocp.StandardCheckpointer() as ckptr:
        read_every_value(model_dir / VARIABLES_DIR)
        variables = ckptr.restore((model_dir / VARIABLES_DIR).absolute())
    check_variables(model, variables, str(model_dir))
    variables = jax.tree_util.tree_map(lambda x, t: jax.numpy.asarray(x, t.dtype), variables, target)
    return model, variables


__all__ = ["CONFIG_FILE", "VARIABLES_DIR", "abstract_variables", "check_replaceable", "check_variables",
           "load_model_dir", "orbax_errors", "read_config", "read_every_value", "save_checkpoint", "short_reason"]
