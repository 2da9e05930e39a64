"""Environment dynamics and rewards (issue 3): small shapes, one compile per env."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.errors import OmniJaxError
from omni_jax.rl import envs


def test_registered_with_brax():
    from brax import envs as brax_envs
    for name in ("navigation2d", "halfcheetah_vel", "halfcheetah_dir"):
        assert name in brax_envs._envs
    assert isinstance(brax_envs.get_environment("navigation2d"), envs.Navigation2D)


def test_navigation_reward_clip_and_goal_ends_episode():
    env = envs.make_env("navigation2d")
    goal = {"goal": jnp.array([0.15, -0.05])}
    s = env.reset(jax.random.PRNGKey(0), goal)
    np.testing.assert_allclose(s.obs, [0.0, 0.0])
    s1 = env.step(s, jnp.array([5.0, -0.05]))  # x clipped to 0.1
    np.testing.assert_allclose(s1.obs, [0.1, -0.05], atol=1e-6)
    np.testing.assert_allclose(s1.reward, -(0.05 ** 2), rtol=1e-5)  # negative squared distance
    assert float(s1.done) == 0.0
    s2 = env.step(s1, jnp.array([0.05, 0.0]))
    np.testing.assert_allclose(s2.reward, 0.0, atol=1e-7)
    assert float(s2.done) == 1.0  # within 0.01 of the goal
    s3 = env.step(s1, jnp.array([0.045, 0.0]))  # 0.005 away: still inside 0.01
    assert float(s3.done) == 1.0
    s4 = env.step(s1, jnp.array([0.03, 0.0]))  # 0.02 away
    assert float(s4.done) == 0.0


def test_navigation_goals_in_unit_square():
    g = envs.make_env("navigation2d").sample_tasks(jax.random.PRNGKey(3), 4000)["goal"]
    assert g.shape == (4000, 2)
    assert float(g.min()) >= -0.5 and float(g.max()) <= 0.5
    # E|g|^2 = 1/6: staying at the origin for 100 steps scores about -16.7
    np.testing.assert_allclose(100 * float(jnp.mean(jnp.sum(g ** 2, -1))), 16.7, rtol=0.05)


def test_rollout_masks_steps_after_done():
    from omni_jax.rl import acting
    env = envs.make_env("navigation2d")
    # a policy that heads straight for a goal on the x axis at full speed, with tiny noise
    apply = lambda p, o, f: (jnp.broadcast_to(jnp.array([0.1, 0.0]), o.shape), jnp.full(o.shape, -20.0))
    tasks = {"goal": jnp.array([[0.3, 0.0], [5.0, 0.0]])}
    traj = acting.rollout(env, [(apply, "joint", False)], [{}], tasks, jax.random.PRNGKey(0), num_traj=2, horizon=6)
    assert traj["mask"].shape == (1, 2, 2, 6)
    # goal 0.3 reached after 3 steps: steps 4-6 are masked; the far goal is never reached
    np.testing.assert_array_equal(traj["mask"][0, 0, 0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(traj["mask"][0, 1, 0], [1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(acting.episode_returns(traj)[0, 0, 0], -(0.2 ** 2 + 0.1 ** 2), rtol=1e-4)


@pytest.mark.slow
def test_cheetah_vel_reward_and_tasks_differ_only_by_info():
    """One small vmapped reset + step (the only cheetah compile of the suite)."""
    env = envs.make_env("halfcheetah_vel", backend="spring")
    key = jax.random.PRNGKey(0)
    tasks = {"velocity": jnp.array([0.3, 1.7])}
    action = jnp.broadcast_to(jnp.linspace(-1.5, 1.5, env.action_size), (2, env.action_size))

    @jax.jit
    def reset_step(keys, tasks, action):
        s = jax.vmap(env.reset)(keys, tasks)
        return s, jax.vmap(env.step)(s, action)

    keys = jnp.stack([key, key])  # the same noise: the two tasks differ only in state.info
    s0, s1 = reset_step(keys, tasks, action)
    np.testing.assert_array_equal(s0.obs[0], s0.obs[1])
    np.testing.assert_array_equal(s1.obs[0], s1.obs[1])
    np.testing.assert_array_equal(s1.info["task"]["velocity"], tasks["velocity"])
    v = s1.metrics["x_velocity"]
    assert float(v[0]) == float(v[1]) and float(v[0]) != 0.0
    ctrl = 0.05 * jnp.sum(jnp.clip(action, -1, 1) ** 2, -1)  # the action is clipped to [-1, 1]
    np.testing.assert_allclose(s1.reward, -jnp.abs(v - tasks["velocity"]) - ctrl, rtol=1e-5, atol=1e-5)
    assert float(s1.reward[0]) != float(s1.reward[1])
    assert s1.obs.shape == (2, env.observation_size) and np.isfinite(np.asarray(s1.obs)).all()


def test_cheetah_dir_reward_formula():
    env = envs.HalfCheetahDir.__new__(envs.HalfCheetahDir)  # the reward needs no physics
    a = jnp.array([2.0, -0.5, 0.0, 0.0, 0.0, 0.1])
    for d, v in ((1.0, 0.7), (-1.0, 0.7), (-1.0, -1.2)):
        r = env.task_reward({"direction": jnp.asarray(d)}, jnp.asarray(v), jnp.clip(a, -1, 1))
        np.testing.assert_allclose(r, d * v - 0.05 * (1.0 + 0.25 + 0.01), rtol=1e-6)


def test_cheetah_task_sampling():
    vel = envs.HalfCheetahVel.sample_tasks(None, jax.random.PRNGKey(0), 1000)["velocity"]
    assert 0.0 <= float(vel.min()) and float(vel.max()) <= 2.0
    d = envs.HalfCheetahDir.sample_tasks(None, jax.random.PRNGKey(0), 1000)["direction"]
    assert set(np.unique(np.asarray(d)).tolist()) == {-1.0, 1.0}


def test_bad_env_and_backend_are_clear_errors():
    with pytest.raises(OmniJaxError, match="unknown env 'cartpole'"):
        envs.make_env("cartpole")
    with pytest.raises(OmniJaxError, match="env.backend='warp'"):
        envs.make_env("halfcheetah_vel", backend="warp")
