"""HalfCheetah velocity sized for 2 CPU cores (Baseline, MAML and Omni-Training; times in docs/rl.md).

    omni-jax rl --config rl_halfcheetah_vel_cpu --workdir runs/rl_halfcheetah_vel_cpu   # resumes when rerun

The paper's protocol (rl_halfcheetah_vel: 500 iterations x 40 tasks x 20 + 20
trajectories of 200 steps, 2,000 test tasks) samples 1.6 billion environment
steps for the three methods; this one keeps the horizon (200), the policy, the
step sizes and the Omni-Loss and samples fewer tasks and trajectories per
iteration, and tests on 200 new tasks with 10 trajectories per adaptation
step. What it costs and what it reaches: README, "Reinforcement learning".
"""
import ml_collections

from omni_jax.configs import rl_halfcheetah_vel


def shrink(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The CPU sizes, applied to a HalfCheetah config (shared with rl_halfcheetah_dir_cpu)."""
    c.train.num_steps = 750
    c.train.meta_batch = 4                # tasks per iteration (paper: 40)
    c.train.num_traj = 10                 # trajectories per task and gradient step (paper: 20)
    c.train.ckpt_every = 50
    c.train.val_every = 50                # test the policy of best validation return (40 tasks, 1 step): MAML
                                          #   collapsed in its last 70 of 750 iterations without it (README)
    c.train.outer_optimizer = "adam"      # paper: SGD at lr 0.03; at this batch size one iteration's
    c.train.outer_lr = 3e-3               #   gradient is mostly noise, and SGD did not learn (README)
    c.eval.num_tasks = 200                # paper: 2,000
    c.eval.num_traj = 10                  # as in training
    c.eval.task_chunk = 40
    return c


def get_config() -> ml_collections.ConfigDict:
    return shrink(rl_halfcheetah_vel.get_config())
