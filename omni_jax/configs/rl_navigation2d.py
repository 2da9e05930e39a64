"""2D navigation, paper §6.3 (Figure 8, left panel).

    omni-jax rl --env navigation2d --workdir runs/rl_navigation2d
    omni-jax rl --env navigation2d --quick
    omni-jax rl --env navigation2d --config.train.first_order=True     # FOMAML inner loop
"""
import ml_collections

from omni_jax.config import omni_group


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.env = e = ml_collections.ConfigDict()
    e.name = "navigation2d"
    e.horizon = 100
    e.backend = "spring"                  # unused by navigation2d (no physics)

    c.policy = p = ml_collections.ConfigDict()
    p.widths = (64, 64)                   # two (Omni-)Layers of 64 tanh units (paper)
    p.activation = "tanh"
    p.init_log_std = 0.0
    p.kernel_init = "xavier_uniform"      # pytorch-maml-rl's (PyTorch's xavier_uniform_); with Flax's
                                          # lecun_normal every method adapts slower per step (docs/rl.md)
    p.flows_start_as_joint = True         # zero branches, pre/meta heads copied from joint at init

    c.train = t = ml_collections.ConfigDict()
    t.methods = ("baseline", "maml", "omni")
    t.num_steps = 500                     # meta-iterations (paper)
    t.meta_batch = 20                     # tasks per iteration (paper: 20 navigation, 40 locomotion)
    t.num_traj = 20                       # trajectories per task for each gradient step (paper)
    t.inner_lr = 0.1                      # paper
    t.outer_lr = 0.03                     # outer SGD (paper)
    t.outer_optimizer = "sgd"             # sgd | adam
    t.first_order = False                 # second-order MAML-RL (first-order barely beat Baseline)
    t.discount = 0.99
    t.chunk_size = 10                     # iterations per jitted lax.scan call
    t.task_chunk = 1                      # tasks per vmapped batch in the inner steps: 1 is one task after
                                          # the other (fastest on a CPU), >= meta_batch all at once (accelerators)
    t.ckpt_every = 50
    t.val_every = 0                       # model selection every val_every iterations (0: none, the paper's:
    t.val_tasks = 40                      #   the last iteration is tested): the mean return on val_tasks
    t.val_steps = 1                       #   validation tasks after val_steps inner steps; the best is tested

    c.omni = omni_group(lam=3.0, ema_decay=0.99)    # Omni-Loss terms, λ, EMA teacher β (paper defaults)

    c.eval = v = ml_collections.ConfigDict()
    v.seed = 0                            # the test tasks' seed (the same tasks for every method and training seed)
    v.num_tasks = 2000                    # paper
    v.num_traj = 20                       # per gradient step, and the query trajectories (paper)
    v.max_steps = 4                       # 1 to 4 adaptation steps (paper)
    v.lr = 0.1                            # REINFORCE SGD at test time: the inner lr
    v.step_rule = "sgd"                   # test-time step: "sgd" (plain, as the paper), "kl_bound" (each step's
    v.max_kl = 0.05                       #   KL divergence at most max_kl; see omni_jax.rl.losses.adapt_kl_bounded)
    v.task_chunk = 100                    # tasks evaluated per jitted call
    v.omni_head = "joint"                 # which head is reported as "omni" (as in sinusoid; the others evaluated are also reported)
    v.omni_heads = ("joint", "pre", "meta")   # the Omni heads evaluated (each costs as much as a method)
    v.random_reference = True             # also evaluate an untrained policy ("random"), the reference to beat
    return c
