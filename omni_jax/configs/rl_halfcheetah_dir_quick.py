"""``omni-jax rl --env halfcheetah_dir --quick``: the velocity smoke run on the direction tasks."""
import ml_collections

from omni_jax.configs import rl_halfcheetah_vel_quick


def get_config() -> ml_collections.ConfigDict:
    c = rl_halfcheetah_vel_quick.get_config()
    c.env.name = "halfcheetah_dir"
    return c
