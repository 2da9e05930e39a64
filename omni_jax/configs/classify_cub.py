"""Table 2's CUB column (§6.1): CUB-200-2011 in Chen et al.'s 100/50/50 class split, ResNet-18 at 224x224.

    omni-jax classify --config classify_cub --data-dir CUB_200_2011 --method omni_proto,protonet,baseline
"""
import ml_collections

from omni_jax.configs import classify_miniimagenet


def get_config() -> ml_collections.ConfigDict:
    c = classify_miniimagenet.get_config()
    c.data.dataset = "cub"
    return c
