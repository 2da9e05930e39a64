"""``omni-jax rl --config rl_halfcheetah_vel_cpu --quick``: the smoke run's sizes (rl_halfcheetah_vel_quick)."""
import ml_collections

from omni_jax.configs import rl_halfcheetah_vel_cpu, rl_halfcheetah_vel_quick


def get_config() -> ml_collections.ConfigDict:
    return rl_halfcheetah_vel_quick.shrink(rl_halfcheetah_vel_cpu.get_config())
