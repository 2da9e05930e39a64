"""``omni-jax classify --config classify_mini2cub --quick``: that config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_mini2cub, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_mini2cub.get_config())
