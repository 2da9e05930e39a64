"""Sinusoid regression, paper §6.2 (Figures 5, 6 and 9b).

    omni-jax sinusoid --workdir runs/sinusoid
    omni-jax sinusoid --config.data.phase_max=3.141592653589793   # MAML's original phase range
    omni-jax sinusoid --config.omni.lam=0.0                       # no self-distillation
"""
import math

import ml_collections

from omni_jax.config import omni_group


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = d = ml_collections.ConfigDict()
    d.amp_min, d.amp_max = 0.1, 5.0
    d.phase_min, d.phase_max = 0.0, 2 * math.pi   # the paper's range; MAML's original is [0, π]
    d.x_min, d.x_max = -5.0, 5.0
    d.fixed_train_set = True                      # the paper's 30,000 tasks × 50 points
    d.num_train_tasks = 30000
    d.points_per_task = 50

    c.model = m = ml_collections.ConfigDict()
    m.widths = (64, 64)                           # 2 × 64 tanh, as in the paper
    m.activation = "tanh"
    m.kernel_init = "lecun_normal"                # Dense kernels (omni_jax.nn.models.KERNEL_INITS); chosen on
                                                  # validation tasks: scripts/sinusoid_init.py
    m.branch_rank = 0                             # 0: full-width dense branches; r > 0: rank-r branches

    c.train = t = ml_collections.ConfigDict()
    t.methods = ("baseline", "maml", "joint", "omni")  # ensemble = baseline + maml at test time
    t.num_steps = 40000
    t.meta_batch = 25
    t.k_shot = 10                                 # support points per training task
    t.k_query = 10
    t.pre_batch = 250                             # (x, y) pairs per pre-training mini-batch
    t.inner_lr = 0.02
    t.inner_steps = 1
    t.first_order = False
    t.maml_impl = "dense"                         # "dense": exact fast path for dense nets; "generic": jax.grad inner loop
    t.task_chunk = 1000                           # tasks per chunk of the inner loop (speed and memory; same results)
    t.pre_chunk = 20000                           # points per chunk of the pre-training batch (likewise)
    t.optimizer = "adam"
    t.outer_lr = 0.01                             # decayed linearly to outer_lr * final_lr_ratio
    t.final_lr_ratio = 0.0
    t.chunk_size = 250                            # steps per jitted lax.scan call
    t.ckpt_every = 5000
    t.val_every = 5000                            # validation MSE in metrics.jsonl (the last step is tested,
    t.val_tasks = 100                             #   as in the paper: no selection) on val_tasks tasks

    c.omni = omni_group(lam=3.0, ema_decay=0.99)      # Omni-Loss terms (Table 6), λ, EMA teacher β

    c.eval = e = ml_collections.ConfigDict()
    e.seed = 0                                    # the test tasks' seed (the same for every method)
    e.num_tasks = 100
    e.k_shots = (5, 10, 20)
    e.num_query = 100
    e.max_steps = 10
    e.lr = 0.02                                   # SGD at test time (models diverged at >= 0.05)
    e.omni_head = "joint"                         # which head is reported as "omni"
    return c
