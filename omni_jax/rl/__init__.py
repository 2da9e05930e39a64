"""Reinforcement learning on Brax with Omni-Training (paper §5.1, §5.2 and §6.3, Figure 8).

* ``envs``: Navigation2D, HalfCheetahVel, HalfCheetahDir as registered Brax envs.
* ``networks``: the Gaussian Omni-MLP policy.
* ``acting``: batched rollouts (``lax.scan`` over time, vmap over trajectories,
  tasks and policies).
* ``losses``: the linear feature baseline, REINFORCE (Eq. 18) and MAML-RL (Eq. 19).
* ``train``: one jitted meta-iteration per method, from sampling to the update.
* ``evaluate``: adaptation to new tasks, mean ± 95% CI and medians.
* ``experiment``: :func:`train_and_evaluate` on the shared pipeline.

``train_and_evaluate`` is imported from ``omni_jax.rl.experiment`` (importing
this package does not import Brax).
"""
