"""HalfCheetah direction: reward d * v - 0.05 ||a||^2, d ~ U{-1, +1}; paper §6.3 (Figure 8).

    omni-jax rl --env halfcheetah_dir --quick                                   # a CPU smoke run
    omni-jax rl --env halfcheetah_dir --workdir runs/rl_halfcheetah_dir         # the paper's protocol (a GPU)
    omni-jax rl --env halfcheetah_dir --config.env.backend=generalized          # MuJoCo-like physics, slower

Everything but the task is the velocity experiment's config (rl_halfcheetah_vel.py).
"""
import ml_collections

from omni_jax.configs import rl_halfcheetah_vel


def get_config() -> ml_collections.ConfigDict:
    c = rl_halfcheetah_vel.get_config()
    c.env.name = "halfcheetah_dir"
    return c
