"""Sinusoid regression (paper §6.2) on the shared pipeline: :func:`train_and_evaluate`.

Trains the methods of ``train.methods`` (Baseline, MAML, Joint-Training,
Omni-Training; Ensemble is Baseline + MAML at test time), evaluates them on
new tasks after 1..``eval.max_steps`` SGD steps for every K of
``eval.k_shots``, and writes ``results.json`` (records ``{"method", "k_shot",
"steps", "mse", "ci95"}``, plus ``"head"`` for ``omni``),
``fig5_mse_vs_steps.png`` and ``fig6_recovered_waves.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax.sinusoid import evaluate as ev
from omni_jax.sinusoid import plots
from omni_jax.sinusoid import train as tr
from omni_jax.training import prng_stream
from omni_jax.training import runner


def recovered_waves(models: dict, cfg, num_tasks: int = 3, k_shot: int = 5) -> dict:
    """Figure 6's data: K=5 example tasks, predictions on a grid after each step."""
    tasks, support, _ = ev.sample_test_tasks(cfg, prng_stream(cfg.eval.seed, "figure", k_shot), num_tasks, k_shot)
    grid = jnp.linspace(cfg.data.x_min, cfg.data.x_max, 200)
    gx = jnp.broadcast_to(grid[None, :, None], (num_tasks, grid.size, 1))
    preds = ev.predictions_by_method(models, cfg, support, gx)
    keep = [m for m in ("baseline", "maml", "omni") if m in preds]
    return {"x": np.asarray(grid), "truth": np.asarray(tasks(gx)[..., 0]),
            "support_x": np.asarray(support["x"][..., 0]), "support_y": np.asarray(support["y"][..., 0]),
            "preds": {m: np.asarray(preds[m][..., 0]) for m in keep}}


def figure6_steps(cfg) -> tuple:
    """The adaptation steps Figure 6 shows: 1 and 10 (the paper's), or 1 and the last when
    ``eval.max_steps`` < 10."""
    return tuple(sorted({1, min(10, cfg.eval.max_steps)}))


def _models(trained: Mapping[str, runner.Trained]) -> dict:
    return {m: (t.program.model, t.state.params) for m, t in trained.items()}


class _Evaluator(runner.Evaluator):
    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, trained):
        return ev.evaluate(_models(trained), self.cfg)


class SinusoidExperiment(runner.Experiment):
    name = "sinusoid"
    check = staticmethod(tr.check)
    fingerprint = staticmethod(tr.fingerprint)
    setup = staticmethod(tr.setup)
    prepare = staticmethod(tr.training_set)

    def describe(self, cfg, context, mesh):
        d = cfg.data
        return (f"omni-jax sinusoid: {mesh.devices.size} {jax.devices()[0].platform} device(s), "
                f"{cfg.train.num_steps} steps x {cfg.train.meta_batch} tasks, phase range "
                f"[{d.phase_min:.3g}, {d.phase_max:.3g}]")

    def evaluator(self, cfg, programs, context, mesh):
        return _Evaluator(cfg)

    def table(self, cfg, records: List[dict]) -> str:
        return (f"Sinusoid regression: mean MSE ± 95% CI over {cfg.eval.num_tasks} test tasks after s SGD "
                f"steps (lr {cfg.eval.lr});\nomni = Omni-Training's {cfg.eval.omni_head} head; all steps are "
                f"in results.json\n" + ev.results_table(records))

    def plots(self, cfg, records, trained, context, workdir: Path):
        return [plots.plot_mse_vs_steps(records, workdir / "fig5_mse_vs_steps.png"),
                plots.plot_recovered_waves(recovered_waves(_models(trained), cfg), workdir / "fig6_recovered_waves.png",
                                           steps=figure6_steps(cfg))]


def trained_models(config, workdir, methods=None) -> dict:
    """``{method: (model, params)}`` of the finished methods in ``workdir`` (a work directory of
    :func:`train_and_evaluate` with this config), as :func:`omni_jax.sinusoid.evaluate.evaluate`
    takes them. Raises OmniJaxError when a method has not finished training."""
    return _models(runner.trained_models(SinusoidExperiment(), config, workdir, methods))


def train_and_evaluate(config, workdir, **kwargs):
    """Trains and evaluates every method of ``config`` in ``workdir`` (resuming); returns the
    ``results.json`` records. Keyword arguments go to :func:`omni_jax.training.runner.train_and_evaluate`."""
    return runner.train_and_evaluate(SinusoidExperiment(), config, workdir, **kwargs)
