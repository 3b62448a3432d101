"""The paper's single-task baseline `big_au` on BP4D+ fold 1 (`dataset.config='fold2'` for another fold)."""

from configs import common


def get_config():
    return common.single_task_config("big_au", fold=1)
