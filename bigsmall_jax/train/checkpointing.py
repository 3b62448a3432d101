"""Train checkpoints (orbax: train state + progress JSON) and the model directories a run exports.

A train checkpoint ``WORKDIR/checkpoints/<step>/`` holds the `TrainState` (params, AdamW state, step) and
a progress JSON: epoch, best validation so far, every process's grain iterator position and the process
count. Exported models use the `bigsmall_jax.checkpoints.model_dir` layout (``bigsmall_config.json`` +
``variables/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from bigsmall_jax.checkpoints import model_dir
from bigsmall_jax.errors import file_error
from bigsmall_jax.model import ModelConfig, abstract_variables, build_model
from bigsmall_jax.train.parallel import allgather_text


def checkpoint_manager(directory: Path, keep: int):
    """An orbax CheckpointManager of (state, progress) items in `directory`, keeping the last `keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max(1, int(keep)), create=True,
                                           cleanup_tmp_directories=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.absolute(), options=options,
                                 item_names=("state", "progress"))


def save_train_checkpoint(manager, state_host, progress: Mapping[str, Any], iterator_state: bytes | None) -> None:
    """Saves (train state, progress JSON with every process's iterator position) at ``state.step``."""
    states = allgather_text("" if iterator_state is None else iterator_state.decode())
    payload = {**progress, "iterator_states": states, "process_count": jax.process_count()}
    step = int(state_host.step)
    with model_dir.orbax_errors(manager.directory / str(step), "cannot write the training checkpoint"):
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state_host),
                                                   progress=ocp.args.JsonSave(payload)), force=True)
        manager.wait_until_finished()


def restore_train_checkpoint(manager, target_host) -> tuple[Any, dict] | None:
    """(train state, progress) of the latest checkpoint, or None when there is none."""
    step = manager.latest_step()
    if step is None:
        return None
    earlier = [s for s in manager.all_steps() if s < step]
    hint = (f"; delete it to resume from step {max(earlier)}" if earlier else
            "; delete it (and the workdir's other files) to start again")
    with model_dir.orbax_errors(manager.directory / str(step), "cannot restore the training checkpoint", hint):
        model_dir.read_every_value(manager.directory / str(step) / "state")
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target_host),
                                                                 progress=ocp.args.JsonRestore()))
    progress = dict(restored["progress"])
    if int(progress.get("process_count", 1)) != jax.process_count():
        raise file_error(manager.directory / str(step), f"written by {progress.get('process_count')} processes; "
                         f"resume it with as many (now {jax.process_count()})")
    return restored["state"], progress


def export_model(path: Path, mc: ModelConfig, variables, metadata: Mapping[str, Any]) -> Path:
    """Writes a model checkpoint directory (`bigsmall_jax.checkpoints.model_dir` layout) from this process alone.

    In multi-process runs only process 0 writes, so orbax must not wait for the others (``process_local``).
    """
    return model_dir.save_checkpoint(path, mc, variables, dict(metadata), overwrite=True,
                                     process_local=jax.process_count() > 1)


def import_params(path: Path, mc: ModelConfig) -> dict:
    """The variables of a model directory written by `export_model`, read by this process alone."""
    if jax.process_count() == 1:
        return model_dir.load_model_dir(path)[1]
    me = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    target = abstract_variables(build_model(mc))
    with ocp.StandardCheckpointer(multiprocessing_options=options) as ckptr:
        variables = ckptr.restore(Path(path).absolute() / model_dir.VARIABLES_DIR, target)
    model_dir.check_variables(build_model(mc), variables, str(path))
    return variables
