"""Test-time evaluation for sinusoid regression (paper §6.2, Figure 5).

New tasks, K support points each; fine-tune with plain SGD on the support set
for 1..``max_steps`` steps (each step uses all K points) and measure the MSE
on the query points after every step. Every method is evaluated on the same
tasks. Omni-Training is reported per head (its joint, pre and meta flows,
each fine-tuned with its own head) and as the average of the three adapted
heads (``omni_ensemble``); ``omni`` is the head chosen in ``eval.omni_head``
(its record says which in ``"head"``), and that head is not repeated as
``omni_<head>``.
"""
from __future__ import annotations

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax.algorithms import mse, sgd_adapt
from omni_jax.data import sinusoid as sin_data
from omni_jax.nn import FLOWS
from omni_jax.training import mean_ci95, prng_stream
from omni_jax.training.metrics import format_mean_ci

OMNI_HEADS = FLOWS
METHODS = ("baseline", "maml", "ensemble", "joint", "omni",
           "omni_joint", "omni_pre", "omni_meta", "omni_ensemble")


def sample_test_tasks(cfg, key, num_tasks: int, k_shot: int):
    """``num_tasks`` new tasks with ``k_shot`` support and ``num_query`` query points."""
    d = cfg.data
    kt, kx, kq = jax.random.split(key, 3)
    tasks = sin_data.sample_tasks(kt, num_tasks, (d.amp_min, d.amp_max), (d.phase_min, d.phase_max))
    sx = sin_data.sample_inputs(kx, (num_tasks, k_shot), (d.x_min, d.x_max))
    qx = sin_data.sample_inputs(kq, (num_tasks, cfg.eval.num_query), (d.x_min, d.x_max))
    return tasks, {"x": sx, "y": tasks(sx)}, {"x": qx, "y": tasks(qx)}


def adapted_predictions(model, params, flow: str, support: dict, query_x: jnp.ndarray, *, lr: float,
                        num_steps: int) -> jnp.ndarray:
    """Predictions on ``query_x`` after each of ``num_steps`` SGD steps on the
    support set, vmapped over tasks: ``[tasks, num_steps, points, 1]``."""

    def one(sx, sy, qx):
        loss = lambda p: mse(model.apply(p, sx, flow=flow), sy)
        _, preds = sgd_adapt(loss, params, lr=lr, num_steps=num_steps,
                             observe=lambda p: model.apply(p, qx, flow=flow))
        return preds

    return jax.vmap(one)(support["x"], support["y"], query_x)


_adapted_predictions = jax.jit(adapted_predictions, static_argnames=("model", "flow", "num_steps"))


def task_mse(preds: jnp.ndarray, query_y: jnp.ndarray) -> np.ndarray:
    """Per-task, per-step MSE ``[tasks, steps]``."""
    return np.asarray(jnp.mean(jnp.square(preds - query_y[:, None]), axis=(-2, -1)))


def predictions_by_method(models: dict, cfg, support, query_x) -> Dict[str, jnp.ndarray]:
    """Adapted predictions of every reported method, ``{name: [tasks, steps, points, 1]}``.

    ``models`` maps trained methods to ``(model, params)``.
    """
    e = cfg.eval
    run = lambda name, flow: _adapted_predictions(models[name][0], models[name][1], flow, support, query_x,
                                                  lr=e.lr, num_steps=e.max_steps)
    out = {}
    for name in ("baseline", "maml", "joint"):
        if name in models:
            out[name] = run(name, FLOWS[0])
    if "baseline" in out and "maml" in out:
        out["ensemble"] = (out["baseline"] + out["maml"]) / 2
    if "omni" in models:
        for h in OMNI_HEADS:
            out[f"omni_{h}"] = run("omni", h)
        out["omni_ensemble"] = sum(out[f"omni_{h}"] for h in OMNI_HEADS) / len(OMNI_HEADS)
        out["omni"] = out.pop(f"omni_{e.omni_head}")
    return out


def evaluate(models: dict, cfg, stream: str = "test") -> list[dict]:
    """The results records ``{"method", "k_shot", "steps", "mse", "ci95"}`` for
    every method, every K in ``eval.k_shots`` and every step 1..max_steps, on new tasks of the
    PRNG stream ``stream``: ``"test"``, or ``"validation"`` for choosing settings without looking
    at the test tasks (other tasks than the periodic validation's during training)."""
    if stream not in ("test", "validation"):
        raise ValueError(f"stream must be 'test' or 'validation', got {stream!r}")
    e = cfg.eval
    records = []
    for k in e.k_shots:
        # the same tasks for every method; validation: a path the periodic validation does not use
        key = (prng_stream(e.seed, "test", k) if stream == "test"
               else prng_stream(cfg.seed, "validation", "evaluate", k))
        _, support, query = sample_test_tasks(cfg, key, e.num_tasks, k)
        preds = predictions_by_method(models, cfg, support, query["x"])
        for name in METHODS:
            if name not in preds:
                continue
            mean, ci = mean_ci95(task_mse(preds[name], query["y"]), axis=0)
            head = {"head": e.omni_head} if name == "omni" else {}
            for s in range(e.max_steps):
                records.append({"method": name, **head, "k_shot": int(k), "steps": s + 1,
                                "mse": float(mean[s]), "ci95": float(ci[s])})
    return records


def validation_fn(cfg, method: str):
    """Validation during training: ``fn(model, params) -> (score, metrics)``, the MSE after 1 and
    ``eval.max_steps`` steps on ``train.val_tasks`` fixed validation tasks (K = train.k_shot) for
    each flow the method has (the joint flow, every method's first, as ``val/mse_step1``, so
    TensorBoard draws the methods in one chart; the other flows with their name appended); the
    score is minus the joint flow's MSE after the last step."""
    key = prng_stream(cfg.seed, "validation")
    _, support, query = sample_test_tasks(cfg, key, cfg.train.val_tasks, cfg.train.k_shot)
    flows = OMNI_HEADS if method == "omni" else FLOWS[:1]

    def fn(model, params):
        out = {}
        for flow in flows:
            preds = _adapted_predictions(model, params, flow, support, query["x"], lr=cfg.eval.lr,
                                         num_steps=cfg.eval.max_steps)
            err = task_mse(preds, query["y"]).mean(axis=0)
            suffix = "" if flow == FLOWS[0] else f"_{flow}"   # the joint flow's under the plain name
            out[f"val/mse_step1{suffix}"] = float(err[0])
            out[f"val/mse_step{cfg.eval.max_steps}{suffix}"] = float(err[-1])
        return -out[f"val/mse_step{cfg.eval.max_steps}"], out

    return fn


def results_table(records: list[dict], steps=(1, 10)) -> str:
    """Method × K × steps, mean MSE ± 95% CI, as plain text (100 columns for 3 K's and 2 step counts)."""
    ks = sorted({r["k_shot"] for r in records})
    steps = [s for s in steps if any(r["steps"] == s for r in records)]
    index = {(r["method"], r["k_shot"], r["steps"]): r for r in records}
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    cols = [f"K={k} s={s}" for k in ks for s in steps]
    cells = {m: [format_mean_ci(index[(m, k, s)]["mse"], index[(m, k, s)]["ci95"]) if (m, k, s) in index else "-"
                 for k in ks for s in steps] for m in methods}
    w = max([14] + [len(c) + 1 for row in cells.values() for c in row])   # a space between cells, always
    lines = ["method".ljust(14) + "".join(c.rjust(w) for c in cols)]
    lines += [m.ljust(14) + "".join(c.rjust(w) for c in cells[m]) for m in methods]
    return "\n".join(lines)
