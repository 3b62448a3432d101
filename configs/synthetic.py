"""The default run: BigSmall on the embedded synthetic dataset, sized for ~15 minutes on a 2-core CPU.

Held-out synthetic subjects test it (HR / RR MAE, AU F1). Scale up with e.g.
``dataset.settings.n_subjects=24 train.num_epochs=8``.
"""

from bigsmall_jax import waveforms
from configs import common


def get_config():
    c = common.base_config()
    c.dataset.name = "synthetic"
    c.dataset.config = ""
    c.dataset.settings.n_subjects = 12
    c.dataset.settings.videos_per_subject = 2
    c.dataset.settings.duration_s = 20.0
    c.dataset.val_split = ""
    c.train.batch_clips = 16
    c.train.num_epochs = 3
    c.train.checkpoint_every_steps = 100
    c.train.eval_batch_clips = 32
    # negatives / positives of each AU in the generator (as BP4D_AU_POS_WEIGHT is for BP4D+).
    c.loss.au_pos_weight = tuple(waveforms.AU_POS_WEIGHT)
    c.optim.lr = 1e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 50
    c.optim.end_lr_factor = 0.05
    return c
