"""HalfCheetah direction sized for 2 CPU cores (the sizes of rl_halfcheetah_vel_cpu).

    omni-jax rl --config rl_halfcheetah_dir_cpu --workdir runs/rl_halfcheetah_dir_cpu
"""
import ml_collections

from omni_jax.configs import rl_halfcheetah_dir, rl_halfcheetah_vel_cpu


def get_config() -> ml_collections.ConfigDict:
    return rl_halfcheetah_vel_cpu.shrink(rl_halfcheetah_dir.get_config())
