"""`load_checkpoint`: one call for every form a model comes in (shipped model name, model directory, training
workdir, ``.pth``)."""

from __future__ import annotations

from pathlib import Path

from bigsmall_jax.checkpoints.model_dir import load_model_dir
from bigsmall_jax.checkpoints.published import is_published, load_published
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.model import BigSmall, build_model


def load_checkpoint(path: str | Path) -> tuple[BigSmall, dict]:
    """Loads ``(model, variables)`` so that ``model.apply(variables, big, small)`` runs.

    Args:
      path: the name of a shipped model (``"bp4d-fold1"``, see `published.list_models`; a file or folder of
        that name takes precedence), a model checkpoint directory (from `save_checkpoint`, ``convert`` or
        training), a training workdir (its ``model/``), or a PyTorch ``.pth`` state dict (imported on the fly, see
        `bigsmall_jax.checkpoints.torch_import`).
    Raises:
      UserError: missing directory, unreadable or unknown config, arrays missing, extra, mis-shaped or
        not finite.
    """
    if is_published(path):
        return load_published(path)
    path = Path(path)
    if path.suffix == ".pth":
        config, variables = convert_file(path)
        return build_model(config), variables
    return load_model_dir(path)
