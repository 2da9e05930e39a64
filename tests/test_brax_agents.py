"""Brax's own agents on this project's environments: importing ``omni_jax.rl`` registers them, and
Brax PPO (and SAC) train on ``navigation2d`` from ``brax.envs.get_environment``."""
import subprocess
import sys

import pytest

brax = pytest.importorskip("brax")


@pytest.mark.slow
def test_importing_omni_jax_rl_registers_the_environments():
    code = ("import brax.envs\n"
            "import omni_jax.rl\n"
            "for name in ('navigation2d', 'halfcheetah_vel', 'halfcheetah_dir'):\n"
            "    env = brax.envs.get_environment(name)\n"
            "    print(name, type(env).__name__, env.observation_size, env.action_size)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if not line.startswith("Failed to import")]
    assert lines == ["navigation2d Navigation2D 2 2", "halfcheetah_vel HalfCheetahVel 17 6",
                     "halfcheetah_dir HalfCheetahDir 17 6"]


def _needs_brax_trainers():
    import jax
    assert hasattr(jax, "device_put_replicated"), (
        "Brax's trainers call jax.device_put_replicated, which this jax lacks: install the pinned versions "
        "(pip install -r requirements.txt)")


@pytest.mark.slow
def test_brax_ppo_learns_navigation2d():
    _needs_brax_trainers()
    import brax.envs
    from brax.training.agents.ppo import train as ppo

    import omni_jax.rl  # noqa: F401  (registers the environments)

    env = brax.envs.get_environment("navigation2d")
    returns = []
    ppo.train(env, num_timesteps=8_000, episode_length=50, num_envs=32, batch_size=32, num_minibatches=4,
              unroll_length=10, num_updates_per_batch=4, num_evals=2, num_eval_envs=64, learning_rate=3e-3,
              entropy_cost=1e-3, discounting=0.95, normalize_observations=False, seed=0,
              progress_fn=lambda step, metrics: returns.append(float(metrics["eval/episode_reward"])))
    print("Brax PPO on navigation2d, evaluation return before/after:", returns)
    before, after = returns[0], returns[-1]
    # a random policy wanders around the origin (about -33 over 50 steps); trained, it walks to the goal
    assert len(returns) == 2 and after > before + 10, returns


@pytest.mark.slow
def test_brax_sac_trains_on_navigation2d():
    _needs_brax_trainers()
    import brax.envs
    import numpy as np
    from brax.training.agents.sac import train as sac

    import omni_jax.rl  # noqa: F401

    env = brax.envs.get_environment("navigation2d")
    returns = []
    make_policy, params, _ = sac.train(
        env, num_timesteps=2_000, episode_length=50, num_envs=8, batch_size=64, num_evals=2, min_replay_size=200,
        max_replay_size=5_000, seed=0, num_eval_envs=16,
        progress_fn=lambda step, metrics: returns.append(float(metrics["eval/episode_reward"])))
    assert len(returns) == 2 and all(np.isfinite(returns)), returns
