"""RL on Brax (paper §6.3) on the shared pipeline: :func:`train_and_evaluate`.

Trains the methods of ``train.methods`` (Baseline, MAML, Omni-Training) on
``env.name``, adapts every policy (and every Omni head) to ``eval.num_tasks``
new tasks for 0..``eval.max_steps`` REINFORCE steps, and writes
``results.json`` (records ``{"env", "method", "steps", "return", "ci95",
"median", "num_tasks"}``, plus ``"head"`` for ``omni``) and
``figure8_<env>.png``. With ``eval.random_reference`` an untrained policy
(``method: "random"``) is evaluated the same way, as the reference a trained
method must beat. With ``train.val_every`` each method is tested with its
parameters of best validation return (``omni_jax.rl.train.selection_hook``)
and its records say which (``"selected_step"``, ``"val_return"``). The
evaluation compiles in a worker thread while the methods train (each program
compiles the Brax physics again).
"""
from __future__ import annotations

from pathlib import Path

import jax

from omni_jax.rl import evaluate as ev
from omni_jax.rl import plots
from omni_jax.rl import train as tr
from omni_jax.training import runner, selected


class _Evaluator(runner.Evaluator):
    def __init__(self, cfg, env, programs, mesh):
        self.cfg = cfg
        self.methods = list(programs)
        initial = {m: (p.model, p.state.params) for m, p in programs.items()}
        # the reference: an untrained plain policy, adapted like the others (``eval.random_reference``)
        self.reference = {"random": tr.random_policy(cfg, env)} if cfg.eval.random_reference else {}
        self.adaptation = ev.AdaptationEvaluator(cfg, env, ev.entries_for({**initial, **self.reference}, cfg.eval.omni_heads),
                                                  mesh=mesh)

    def compile(self):
        self.adaptation.compile()

    def __call__(self, trained):
        entries = ev.entries_for({**{m: (t.program.model, selected(t.state).params) for m, t in trained.items()},
                                  **self.reference}, self.cfg.eval.omni_heads)
        returns = self.adaptation.returns([p for _, _, p, _ in entries])
        records = ev.records_from_returns(self.cfg.env.name, self.adaptation.labels, returns, self.cfg.eval.omni_head)
        if self.cfg.train.val_every:   # which iteration each method's tested policy is from
            for r in records:
                t = trained.get("omni" if r["method"].startswith("omni") else r["method"])
                if t is not None:
                    chosen = selected(t.state)
                    r["selected_step"] = chosen.step
                    r["val_return"] = round(chosen.score, 3)
        return records


class RLExperiment(runner.Experiment):
    name = "rl"
    score_name = "return"
    check = staticmethod(tr.check)
    fingerprint = staticmethod(tr.fingerprint)
    setup = staticmethod(tr.setup)
    prepare = staticmethod(tr.make_env_from_config)

    def describe(self, cfg, context, mesh):
        t = cfg.train
        backend = cfg.env.backend if cfg.env.name != "navigation2d" else "-"
        return (f"omni-jax rl: {cfg.env.name} (backend {backend}), {mesh.devices.size} "
                f"{jax.devices()[0].platform} device(s); {t.num_steps} iterations x {t.meta_batch} tasks x "
                f"{t.num_traj} trajectories x {cfg.env.horizon} steps, "
                f"{'first' if t.first_order else 'second'}-order MAML-RL")

    def evaluator(self, cfg, programs, context, mesh):
        return _Evaluator(cfg, context, programs, mesh)

    def table(self, cfg, records):
        e = cfg.eval
        return (f"{cfg.env.name}: average return, mean ± 95% CI (median) over {e.num_tasks} new tasks after k "
                f"REINFORCE steps\nof {e.num_traj} trajectories (lr {e.lr}); omni = Omni-Training's "
                f"{e.omni_head} head\n" + ev.results_table(records))

    def plots(self, cfg, records, trained, context, workdir: Path):
        return [plots.plot_return_vs_steps(records, workdir / f"figure8_{cfg.env.name}.png")]


def trained_models(config, workdir, methods=None) -> dict:
    """``{method: (policy, params)}`` of the finished methods in ``workdir`` (a work directory of
    :func:`train_and_evaluate` with this config; the selected parameters where the run selected on
    validation tasks, ``train.val_every``), for evaluating them in other ways
    (``omni_jax.rl.evaluate``). Raises OmniJaxError when a method has not finished training."""
    trained = runner.trained_models(RLExperiment(), config, workdir, methods)
    return {m: (t.program.model, selected(t.state).params) for m, t in trained.items()}


def train_and_evaluate(config, workdir, **kwargs):
    """Trains and evaluates every method of ``config`` in ``workdir`` (resuming); returns the
    ``results.json`` records. Keyword arguments go to :func:`omni_jax.training.runner.train_and_evaluate`."""
    return runner.train_and_evaluate(RLExperiment(), config, workdir, **kwargs)
