"""Published models shipped inside the package: the BigSmall paper's BP4D+ fold-1 single-task baselines.

The paper's authors published three models trained on BP4D+ fold 1 (MIT licence): the Big pathway for the
12 AUs, a Small pathway for the pulse and one for respiration. They ship here converted (see
`build_published`) as ONE ``pathways`` model (`bigsmall_jax.model.bigsmall`): one jitted forward pass
returns ``{"au", "bvp", "resp"}`` like a BigSmall checkpoint, so evaluation, inference, live measurement
and the benchmark take it by name (``load_checkpoint("bp4d-fold1")``).

Files, in ``bigsmall_jax/weights/`` (package data, so a wheel has them)::

    <file>.json       # {"model": ModelConfig fields, "metadata": {...}}
    <file>.npz        # float32 arrays named by their Flax path, e.g. "big/conv1/kernel" (no pickles)
    LICENSE           # the authors' MIT licence
    MODEL_CARD.md     # training data, fold, outputs, known limits

Loading reads the npz with ``allow_pickle=False`` and checks every array against the config's shapes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from bigsmall_jax.checkpoints.model_dir import check_variables
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.files import atomic_path, write_json_atomic
from bigsmall_jax.model import BigSmall, ModelConfig, build_model, named_config

WEIGHTS_PACKAGE = "bigsmall_jax.weights"
DEFAULT_MODEL = "bp4d-fold1"
# name -> (file stem in WEIGHTS_PACKAGE, one-line description).
PUBLISHED: dict[str, tuple[str, str]] = {
    "bp4d-fold1": ("bp4d_fold1", "the BigSmall paper's BP4D+ fold-1 single-task models (Big: 12 AUs, Small: "
                                 "pulse, Small: respiration) as one pathways model; MIT, the BigSmall authors"),
}
# The published .pth files, per head of the pathways model.
SOURCE_FILES: dict[str, str] = {
    "au": "BP4D_Big_AU_Clip3_Split1_Epoch4.pth",
    "bvp": "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth",
    "resp": "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth",
}


def is_published(name: str | os.PathLike) -> bool:
    """Whether `name` names a shipped model (and no file or folder of that name exists here)."""
    return isinstance(name, str) and name in PUBLISHED and not Path(name).exists()


def list_models() -> dict[str, str]:
    """The shipped models: name -> description."""
    return {name: desc for name, (_, desc) in PUBLISHED.items()}


def _weights_dir():
    return importlib.resources.files(WEIGHTS_PACKAGE)


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """A nested dict of arrays as {"a/b/c": array}."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        out.update(_flatten(value, path) if isinstance(value, Mapping) else {path: np.asarray(value)})
    return out


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    """{"a/b/c": array} back to a nested dict."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def pathways_variables(parts: Mapping[str, Mapping]) -> dict:
    """The variables of a ``pathways`` model from single-pathway variables.

    Args:
      parts: head ("au", "bvp", "resp") -> the ``{"params": ...}`` of a ``big`` (for "au") or ``small``
        model with that head, e.g. from `torch_import.convert_file`.
    Returns:
      ``{"params": {"big", "au", "small_bvp", "bvp", "small_resp", "resp"}}`` (those of the heads given).
    """
    params = {}
    for task, variables in parts.items():
        p = variables["params"]
        branch = "big" if task == "au" else "small"
        params["big" if task == "au" else f"small_{task}"] = p[branch]
        params[task] = p[task]
    return {"params": params}


def pathways_config(parts: Mapping[str, ModelConfig]) -> ModelConfig:
    """The ``pathways`` config that holds single-pathway configs (head "au" -> a big config, "bvp"/"resp" ->
    small configs)."""
    au, small = parts.get("au"), parts.get("bvp") or parts.get("resp")
    fields = {"n_au": au.n_au if au else 0, "bvp": "bvp" in parts, "resp": "resp" in parts}
    if au:
        fields.update(big_filters=au.big_filters, n_segment=au.n_segment, dense_units=au.dense_units)
    if small:
        fields.update(small_filters=small.small_filters, n_segment=small.n_segment, dense_units=small.dense_units)
    return named_config("pathways", **fields)


def load_published(name: str) -> tuple[BigSmall, dict]:
    """``(model, variables)`` of a shipped model (see `PUBLISHED`).

    Raises:
      UserError: unknown name, or its files missing, unreadable or not matching their config.
    """
    if name not in PUBLISHED:
        raise UserError(f"unknown published model {name!r}; shipped: {', '.join(PUBLISHED)}")
    stem = PUBLISHED[name][0]
    folder = _weights_dir()
    config_file, npz_file = folder / f"{stem}.json", folder / f"{stem}.npz"
    try:
        payload = json.loads(config_file.read_text())
        config = ModelConfig.from_dict(payload["model"], source=str(config_file))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise file_error(config_file, f"cannot read the shipped model's config: {e}") from None
    try:
        with npz_file.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            flat = {key: np.asarray(npz[key]) for key in npz.files}
    except (OSError, ValueError) as e:
        raise file_error(npz_file, f"cannot read the shipped weights: {e}") from None
    model = build_model(config)
    variables = _unflatten(flat)
    check_variables(model, variables, str(npz_file))
    return model, jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x, np.float32), variables)


def build_published(reference_dir: str | os.PathLike, out_dir: str | os.PathLike, stem: str = "bp4d_fold1") -> Path:
    """Converts the three published ``.pth`` files (`SOURCE_FILES`) in `reference_dir` into ``<stem>.npz`` and
    ``<stem>.json`` in `out_dir` (each written atomically); returns the npz path."""
    reference_dir, out_dir = Path(reference_dir), Path(out_dir)
    converted = {task: convert_file(reference_dir / f, task=None if task == "au" else task)
                 for task, f in SOURCE_FILES.items()}
    config = pathways_config({task: c for task, (c, _) in converted.items()})
    variables = pathways_variables({task: v for task, (_, v) in converted.items()})
    check_variables(build_model(config), variables, "converted pathways")
    metadata = {"source_files": dict(SOURCE_FILES), "training_data": "BP4D+", "fold": 1, "epoch": 4,
                "licence": "MIT (see LICENSE)"}
    npz = out_dir / f"{stem}.npz"
    with atomic_path(npz, ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: v.astype(np.float32) for k, v in _flatten(variables).items()})
    write_json_atomic(out_dir / f"{stem}.json", {"model": config.to_dict(), "metadata": metadata}, sort_keys=False)
    return npz


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bigsmall_jax.checkpoints.published REFERENCE_DIR [--out-dir DIR]``: rebuilds the shipped
    files from the published ``.pth`` files (maintainers only; the package already has them)."""
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.checkpoints.published",
                                description=main.__doc__.split(":", 1)[1].strip())
    p.add_argument("reference_dir", help="folder holding the three published BP4D+ fold-1 .pth files")
    p.add_argument("--out-dir", default=os.fspath(Path(__file__).parents[1] / "weights"))
    args = p.parse_args(argv)
    print(build_published(args.reference_dir, args.out_dir))


if __name__ == "__main__":
    main()
