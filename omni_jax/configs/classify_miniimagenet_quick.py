"""``omni-jax classify --config classify_miniimagenet --quick``: that config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_miniimagenet, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_miniimagenet.get_config())
