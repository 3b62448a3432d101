"""BigSmall on BP4D+ fold 3, the paper's recipe (see `configs.common.bp4d_config`)."""

from configs import common


def get_config():
    return common.bp4d_config(fold=3)
