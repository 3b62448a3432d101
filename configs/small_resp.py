"""The paper's single-task baseline `small_resp` on BP4D+ fold 1 (`dataset.config='fold2'` for another fold)."""

from configs import common


def get_config():
    return common.single_task_config("small_resp", fold=1)
