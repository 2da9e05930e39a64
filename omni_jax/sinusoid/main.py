"""Sinusoid regression, paper §6.2: train every method, evaluate, print the table, write plots.

Writes to the work directory: ``<method>/checkpoints`` (orbax),
``<method>/metrics.jsonl``, ``results.json``, ``fig5_mse_vs_steps.png`` and
``fig6_recovered_waves.png``. Running the same command again resumes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax import config as config_lib
from omni_jax.sinusoid import evaluate as ev
from omni_jax.sinusoid import plots
from omni_jax.sinusoid import train as tr
from omni_jax.training import CheckpointStore, task_mesh, write_atomic


def add_arguments(parser) -> None:
    from omni_jax.cli import add_common
    add_common(parser, default_config="sinusoid")


def prepare_config(args, overrides):
    cfg = config_lib.load_config(args.config, quick=args.quick)
    cfg = config_lib.apply_overrides(cfg, overrides)
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def recovered_waves(models: dict, cfg, num_tasks: int = 3, k_shot: int = 5) -> dict:
    """Figure 6's data: K=5 example tasks, predictions on a grid after each step."""
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), k_shot)
    tasks, support, _ = ev.sample_test_tasks(cfg, key, num_tasks, k_shot)
    grid = jnp.linspace(cfg.data.x_min, cfg.data.x_max, 200)
    gx = jnp.broadcast_to(grid[None, :, None], (num_tasks, grid.size, 1))
    preds = ev.predictions_by_method(models, cfg, support, gx)
    keep = [m for m in ("baseline", "maml", "omni") if m in preds]
    return {"x": np.asarray(grid), "truth": np.asarray(tasks(gx)[..., 0]),
            "support_x": np.asarray(support["x"][..., 0]), "support_y": np.asarray(support["y"][..., 0]),
            "preds": {m: np.asarray(preds[m][..., 0]) for m in keep}}


def run(args, overrides) -> int:
    cfg = prepare_config(args, overrides)
    mesh = task_mesh()
    tr.validate(cfg, mesh)
    workdir = Path(args.workdir or "runs/sinusoid")
    # Check every method's checkpoint against this config before training any.
    for method in cfg.train.methods:
        CheckpointStore(workdir / method / "checkpoints", tr.fingerprint(cfg, method)).close()
    print(f"omni-jax sinusoid: {len(jax.devices())} {jax.devices()[0].platform} device(s), "
          f"workdir {workdir}, phase range [{cfg.data.phase_min:.3g}, {cfg.data.phase_max:.3g}]", flush=True)

    data = tr.training_set(cfg)
    models, timings = {}, {}
    for method in cfg.train.methods:
        t0 = time.perf_counter()
        state, model = tr.train_method(cfg, method, workdir, data=data, mesh=mesh,
                                       eval_fn=ev.validation_fn(cfg, method), show_progress=not args.no_progress)
        models[method] = (model, state.params)
        timings[method] = time.perf_counter() - t0

    records = ev.evaluate(models, cfg)
    write_atomic(workdir / "results.json", json.dumps(records, indent=1))
    f5 = plots.plot_mse_vs_steps(records, workdir / "fig5_mse_vs_steps.png")
    f6 = plots.plot_recovered_waves(recovered_waves(models, cfg), workdir / "fig6_recovered_waves.png")
    print()
    print(f"Sinusoid regression: mean MSE ± 95% CI over {cfg.eval.num_tasks} test tasks "
          f"(SGD lr {cfg.eval.lr}; s = gradient steps; omni = the {cfg.eval.omni_head} head)")
    print(ev.results_table(records))
    print()
    print("training time this run: " + ", ".join(f"{m} {t:.0f}s" for m, t in timings.items()))
    print(f"wrote {workdir / 'results.json'}, {f5}, {f6}")
    return 0
