"""The one base training config every named config derives from.

A config is data (an `ml_collections.ConfigDict`) with these sections:

* ``model``: the fields of `bigsmall_jax.model.ModelConfig` (``model.n_segment=4``, ``model.shift='zero'``).
* ``dataset``: which TFDS family/config to train on (`bigsmall_jax.datasets.prepare.ensure_dataset`), where it lives,
  and ``settings``: builder/generator overrides (`bigsmall_jax.datasets.registry.make_config`).
* ``train``: batch size in clips (global, over all devices and processes), epochs, logging, checkpoints.
* ``loss``: task weights, AU pos_weight, PCGrad.
* ``optim``: AdamW and its learning-rate schedule (`bigsmall_jax.train.optim`).

Every value can be overridden on the command line as ``dotted.key=python_literal``.
"""

from __future__ import annotations

import ml_collections

from bigsmall_jax.datasets.recording import BP4D_AU_POS_WEIGHT
from bigsmall_jax.model import NAMED_VARIANTS, ModelConfig


def model_section(variant: str = "bigsmall", **overrides) -> ml_collections.ConfigDict:
    """The fields of a named model variant (`bigsmall_jax.model.NAMED_VARIANTS`) as a ConfigDict."""
    fields = ModelConfig(**{**NAMED_VARIANTS[variant], **overrides}).to_dict()
    return ml_collections.ConfigDict({k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every config: the paper's optimizer on the paper's model."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = model_section("bigsmall")

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "synthetic"  # a family of bigsmall_jax.datasets.registry.DATASETS
    c.dataset.config = ""  # the family's named config ("" = its default, e.g. "fold1")
    c.dataset.data_dir = ""  # TFDS data dir ("" = $BIGSMALL_DATA_DIR or ~/.cache/bigsmall_jax/data)
    c.dataset.source_dir = ""  # raw data of real datasets ("" = TFDS manual_dir)
    c.dataset.settings = ml_collections.ConfigDict()  # make_config overrides, e.g. n_subjects for synthetic
    c.dataset.train_split = "train"
    c.dataset.val_split = ""  # "" = no validation (model selection then must be "last")
    c.dataset.test_split = "test"
    c.dataset.worker_count = 0  # grain worker processes for the training loader

    c.train = ml_collections.ConfigDict()
    c.train.batch_clips = 16  # clips per step, global (all devices of all processes)
    c.train.num_epochs = 5
    c.train.steps_per_epoch = -1  # -1: one pass over the training split
    c.train.log_every_steps = 10  # tqdm postfix / TensorBoard; metrics.jsonl gets every step
    c.train.checkpoint_every_steps = 200  # plus one at the end of every epoch
    c.train.keep_checkpoints = 3
    c.train.select = "last"  # "last" (the paper) or "best" (lowest validation loss) epoch is tested
    c.train.eval_batch_clips = 16
    c.train.init = "torch"  # "torch": PyTorch's default init, as the paper trained; "flax": Flax's defaults
    c.train.per_clip_dropout = True  # dropout keys per clip: results do not depend on the device count
    c.train.hflip = False  # mirror half the training clips left to right (not in the paper's recipe)

    c.loss = ml_collections.ConfigDict()
    c.loss.au_weight = 1.0
    c.loss.bvp_weight = 1.0
    c.loss.resp_weight = 1.0
    c.loss.au_pos_weight = ()  # per AU; () = 1 for every AU
    # Curriculum: a task's loss counts only after this fraction of the training steps (0: from the start).
    c.loss.au_start = 0.0
    c.loss.bvp_start = 0.0
    c.loss.resp_start = 0.0
    c.loss.pcgrad = False

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-3
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.0
    c.optim.schedule = "constant"  # "constant", "warmup_cosine" or "one_cycle"
    c.optim.warmup_steps = 0
    c.optim.end_lr_factor = 0.0
    c.optim.clip_norm = 0.0  # global-norm gradient clipping (0: off)
    return c


def bp4d_config(fold: int = 1) -> ml_collections.ConfigDict:
    """The paper's BP4D+ recipe on one of its 3 subject-independent folds.

    AdamW lr 1e-3, weight decay 0, 5 epochs, the last epoch tested, AU pos_weight of BP4D+, pulse trained
    on the POS pseudo-PPG (the builder's fold configs store it as the train pulse label), batch 180 clips
    (the published config's BATCH_SIZE of 180 chunks of 3 frames).
    """
    c = base_config()
    c.dataset.name = "bp4d_plus"
    c.dataset.config = f"fold{fold}"
    c.train.batch_clips = 180
    c.train.num_epochs = 5
    c.train.select = "last"
    c.train.checkpoint_every_steps = 500
    c.train.eval_batch_clips = 64
    c.loss.au_pos_weight = tuple(BP4D_AU_POS_WEIGHT)
    return c


def single_task_config(variant: str, fold: int = 1) -> ml_collections.ConfigDict:
    """One of the paper's single-task baselines ("big_au", "small_bvp", "small_resp") on a BP4D+ fold."""
    c = bp4d_config(fold)
    c.model = model_section(variant)
    if not c.model.n_au:
        c.loss.au_pos_weight = ()
    return c
