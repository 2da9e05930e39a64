"""HalfCheetah velocity: reward -|v - v_goal| - 0.05 ||a||^2, v_goal ~ U[0, 2]; paper §6.3 (Figure 8).

    omni-jax rl --env halfcheetah_vel --quick                                   # a CPU smoke run
    omni-jax rl --env halfcheetah_vel --workdir runs/rl_halfcheetah_vel                    # the paper's protocol (a GPU)
    omni-jax rl --env halfcheetah_vel --config.env.backend=generalized          # MuJoCo-like physics, slower

The backend defaults to 'spring', the fastest on a CPU (see omni_jax/rl/envs.py).
"""
import ml_collections

from omni_jax.config import omni_group


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.env = e = ml_collections.ConfigDict()
    e.name = "halfcheetah_vel"
    e.horizon = 200                       # paper
    e.backend = "spring"                  # generalized | positional | spring | mjx

    c.policy = p = ml_collections.ConfigDict()
    p.widths = (64, 64)                   # two (Omni-)Layers of 64 tanh units (paper)
    p.activation = "tanh"
    p.init_log_std = 0.0
    p.kernel_init = "lecun_normal"        # Flax's default, with which the distillation's stability was
                                          # checked here; "xavier_uniform" is navigation's default
    p.flows_start_as_joint = True         # zero branches, pre/meta heads copied from joint at init

    c.train = t = ml_collections.ConfigDict()
    t.methods = ("baseline", "maml", "omni")
    t.num_steps = 500                     # meta-iterations (paper)
    t.meta_batch = 40                     # tasks per iteration for locomotion (paper)
    t.num_traj = 20                       # trajectories per task for each gradient step (paper)
    t.inner_lr = 0.1                      # paper
    t.outer_lr = 0.03                     # outer SGD (paper)
    t.outer_optimizer = "sgd"             # sgd | adam
    t.first_order = False                 # second-order MAML-RL
    t.discount = 0.99
    t.chunk_size = 10
    t.task_chunk = 1                      # tasks per vmapped batch in the inner steps (as navigation2d)
    t.ckpt_every = 50
    t.val_every = 0                       # model selection every val_every iterations (0: none, the paper's:
    t.val_tasks = 40                      #   the last iteration is tested): the mean return on val_tasks
    t.val_steps = 1                       #   validation tasks after val_steps inner steps; the best is tested

    c.omni = omni_group(lam=3.0, ema_decay=0.99)    # Omni-Loss terms, λ, EMA teacher β (paper defaults)

    c.eval = v = ml_collections.ConfigDict()
    v.seed = 0                            # the test tasks' seed (the same tasks for every method and training seed)
    v.num_tasks = 2000                    # paper
    v.num_traj = 20
    v.max_steps = 4
    v.lr = 0.1
    v.step_rule = "sgd"                   # test-time step: "sgd" (plain, as the paper), "kl_bound" (each step's
    v.max_kl = 0.05                       #   KL divergence at most max_kl; see omni_jax.rl.losses.adapt_kl_bounded)
    v.task_chunk = 40
    v.omni_head = "joint"                 # which head is reported as "omni" (the others evaluated are also reported)
    v.omni_heads = ("joint", "pre", "meta")   # the Omni heads evaluated (each costs as much as a method)
    v.random_reference = True             # also evaluate an untrained policy ("random"), the reference to beat
    return c
