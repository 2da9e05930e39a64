"""Reinforcement learning on Brax with Omni-Training (paper §5.1, §5.2 and §6.3, Figure 8).

* ``envs``: Navigation2D, HalfCheetahVel, HalfCheetahDir as registered Brax envs.
* ``networks``: the Gaussian Omni-MLP policy.
* ``acting``: batched rollouts (``lax.scan`` over time, vmap over trajectories,
  tasks and policies).
* ``losses``: the linear feature baseline, REINFORCE (Eq. 18) and MAML-RL (Eq. 19).
* ``train``: one jitted meta-iteration per method, from sampling to the update.
* ``evaluate``: adaptation to new tasks, mean ± 95% CI and medians.
* ``experiment``: :func:`train_and_evaluate` on the shared pipeline.

Importing this package registers the environments with Brax (when Brax is
installed), so Brax's own agents train on them::

    import omni_jax.rl                                   # registers the environments
    env = brax.envs.get_environment("navigation2d")      # or halfcheetah_vel, halfcheetah_dir
    brax.training.agents.ppo.train.train(env, num_timesteps=..., ...)

Without Brax the package still imports (its pure parts need only JAX); the
environments and ``omni-jax rl`` then say what to install.
``train_and_evaluate`` is imported from ``omni_jax.rl.experiment``.
"""
try:
    from omni_jax.rl import envs as _envs  # noqa: F401  (registers the environments with Brax)
except ModuleNotFoundError as _e:  # Brax (or MuJoCo) not installed: the pure parts still work
    if (_e.name or "").split(".")[0] not in ("brax", "mujoco"):
        raise
