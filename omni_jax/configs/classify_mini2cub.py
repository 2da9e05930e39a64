"""Table 3 (§6.1): mini-ImageNet -> CUB as Chen et al. run it: all 100 mini-ImageNet classes train,
CUB's 50 validation classes select, its 50 test classes test; ResNet-18 at 224x224.

    omni-jax classify --config classify_mini2cub --data-dir DIR --method omni_proto,protonet,baseline

``DIR`` holds ``miniimagenet/`` and ``CUB_200_2011/`` (see ``omni_jax.data.formats.cub.load_mini2cub``).
"""
import ml_collections

from omni_jax.configs import classify_miniimagenet


def get_config() -> ml_collections.ConfigDict:
    c = classify_miniimagenet.get_config()
    c.data.dataset = "mini2cub"
    return c
