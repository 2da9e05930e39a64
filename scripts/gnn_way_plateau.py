"""How long Garcia & Bruna's GNN sits at chance before it learns, against the number of ways (issue 11).

    python scripts/gnn_way_plateau.py --ways 5,20 --steps 1500

The GNN of ``omni_jax.algorithms.gnn`` (``class_set`` graphs, the glyph runs' layout) alone, without
a backbone, on synthetic episodes that are easy to separate: each class is a random Gaussian
prototype in ``--dim`` dimensions, its support and query points the prototype plus noise of std
``--noise`` (at 0.5 in 64 dimensions a nearest-prototype rule is right on essentially every query).
So whatever keeps the loss at chance is the GNN's own training, not the features. Trained with
Adam (``--lr``) on one fresh episode per step, ``--shots`` support and ``--queries`` query points
per class.

Prints, per way count, the mean loss and query accuracy over windows of ``--window`` steps (ln N
is chance), then one JSON line ``{"<N>-way": {"escape_step": s, "final_accuracy": a, ...}}`` where
``escape_step`` is the first step whose window accuracy reaches ``--escape`` (``null`` if none).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from omni_jax.algorithms.gnn import GraphNetwork


def synthetic_episode(key, n_way: int, k_shot: int, n_query: int, dim: int, noise: float):
    """``(support_f [1, N·K, dim], support_onehot [1, N·K, N], query_f [1, N·Q, dim], query_y [1, N·Q])``,
    class-major (the episode sampler's order, which ``class_set`` graphs need)."""
    kp, ks, kq = jax.random.split(key, 3)
    protos = jax.random.normal(kp, (1, n_way, dim))
    support = jnp.repeat(protos, k_shot, axis=1) + noise * jax.random.normal(ks, (1, n_way * k_shot, dim))
    query = jnp.repeat(protos, n_query, axis=1) + noise * jax.random.normal(kq, (1, n_way * n_query, dim))
    support_y = jnp.repeat(jnp.arange(n_way), k_shot)[None]
    query_y = jnp.repeat(jnp.arange(n_way), n_query)[None]
    return support, jax.nn.one_hot(support_y, n_way), query, query_y


def escape_step(accuracies: Sequence[float], window: int, threshold: float) -> Optional[int]:
    """The last step of the first window of ``window`` steps whose mean accuracy reaches
    ``threshold`` (windows end at steps window, 2·window, ...); ``None`` if none does."""
    acc = np.asarray(accuracies, float)
    for end in range(window, len(acc) + 1, window):
        if acc[end - window:end].mean() >= threshold:
            return end
    return None


def train_curve(n_way: int, *, k_shot: int, n_query: int, dim: int, noise: float, lr: float, steps: int,
                seed: int = 0):
    """Per-step ``(losses, accuracies)`` of the GNN trained from scratch on fresh synthetic episodes."""
    net = GraphNetwork(graph="class_set")
    k_init, k_data = jax.random.split(jax.random.PRNGKey(seed))
    sf, so, qf, _ = synthetic_episode(k_data, n_way, k_shot, n_query, dim, noise)
    variables = net.init(k_init, sf, so, qf, True)
    opt = optax.adam(lr)

    @jax.jit
    def step(params, stats, opt_state, key):
        sf, so, qf, qy = synthetic_episode(key, n_way, k_shot, n_query, dim, noise)

        def loss_fn(p):
            logits, new = net.apply({"params": p, "batch_stats": stats}, sf, so, qf, True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, qy).mean()
            return loss, (new["batch_stats"], jnp.mean(logits.argmax(-1) == qy))

        (loss, (stats, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss, acc

    params, stats = variables["params"], variables.get("batch_stats", {})   # none with bn="batch"
    opt_state = opt.init(params)
    losses, accs = [], []
    for key in jax.random.split(jax.random.fold_in(k_data, 1), steps):
        params, stats, opt_state, loss, acc = step(params, stats, opt_state, key)
        losses.append(float(loss))
        accs.append(float(acc))
    return np.asarray(losses), np.asarray(accs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ways", default="5,20")
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--escape", type=float, default=0.5, help="window accuracy that counts as learned")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps < args.window or args.window < 1:
        p.error(f"--steps ({args.steps}) must be at least --window ({args.window}), which must be positive")
    summary = {}
    for n in [int(w) for w in args.ways.split(",") if w]:
        t0 = time.perf_counter()
        losses, accs = train_curve(n, k_shot=args.shots, n_query=args.queries, dim=args.dim, noise=args.noise,
                                   lr=args.lr, steps=args.steps, seed=args.seed)
        seconds = time.perf_counter() - t0
        print(f"\n{n}-way {args.shots}-shot, {args.queries} queries per class, noise {args.noise}, Adam {args.lr} "
              f"(chance: loss ln {n} = {np.log(n):.3f}, accuracy {1 / n:.3f}); {seconds:.0f} s")
        print(f"{'steps':>11} {'loss':>7} {'accuracy':>9}")
        for end in range(args.window, args.steps + 1, args.window):
            sl = slice(end - args.window, end)
            print(f"{end - args.window + 1:>5}-{end:<5} {losses[sl].mean():7.3f} {accs[sl].mean():9.3f}")
        summary[f"{n}-way"] = {"escape_step": escape_step(accs, args.window, args.escape),
                               "chance_loss": round(float(np.log(n)), 4),
                               "first_window_loss": round(float(losses[:args.window].mean()), 4),
                               "final_accuracy": round(float(accs[-args.window:].mean()), 4),
                               "seconds": round(seconds, 1)}
    print(json.dumps({"gnn_way_plateau": summary, "args": vars(args)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
