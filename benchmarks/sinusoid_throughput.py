"""Meta-training throughput on sinusoid regression as the meta-batch grows: MAML, Omni-Training, torch.func.

    python benchmarks/sinusoid_throughput.py [--meta-batches 25,100,1000,3000,10000,30000] [--torch] [--generic]
                                             [--omnify] [--rows maml,omni]

The paper's network (2×64 tanh), K = 10 support and 10 query points, one
second-order inner step. Each row is the jitted training step of
``omni_jax.sinusoid`` (tasks sampled inside jit from the fixed training set,
the Omni-Loss, Adam, the EMA teacher) run as a ``lax.scan`` of steps, timed
after warm-up (the median of ``--repeats`` calls). Every (method, size) runs
in a fresh subprocess, so its peak resident memory (``peak_rss_mb``: the
whole process, JAX and the data included) is its own. For each size the
rows run one after the other (JAX MAML, JAX Omni-Training, then the
references), so the ratios compare runs under the same machine load.

Omni-Training's pre-training batch grows with the meta-batch at the default
config's rate (``pre_batch / meta_batch`` = 10 points per task; ``--pre-per-task``
to change it). Its step computes MAML on two flows, the teacher's adaptation
and three passes over the pre-training batch, so its cost over MAML's grows
with that rate (measured on 2 cores at 10,000 tasks: 2.45x at 10 points per
task, 2.8-3.3x at 20).

``--torch`` adds plain second-order MAML in PyTorch with ``torch.func``
(same network and shapes, Adam; tasks sampled on the host). ``--generic``
adds the JAX MAML step with the generic inner loop (``train.maml_impl=
"generic"``: ``jax.grad`` through the network, adapted weights per task)
against the default dense fast path (``maml_dense``). The last line is a
JSON object: ``maml_tasks_per_s_mb<N>``, ``omni_tasks_per_s_mb<N>``,
``peak_rss_mb_mb<N>`` (the MAML step's), ``omni_peak_rss_mb_mb<N>``,
``torch_tasks_per_s_mb<N>``, ``torch_peak_rss_mb_mb<N>``,
``omni_over_maml_step_time_mb<N>``, ``maml_over_torch_mb<N>`` and, with
``--generic``, ``generic_tasks_per_s_mb<N>``.

``--omnify`` adds Omni-Training of ``omni_jax.omnify`` of a plain Flax MLP (:func:`plain_mlp`: the
same 2x64 tanh network written with ``nn.Dense``, its last layer the Omni-Head) against the
package's own ``OmniMLP``, both on the generic MAML path (``train.maml_impl="generic"``; the dense
fast path reads an OmniMLP's layers): rows ``omni (jax, generic)`` and ``omnify (jax, generic)``,
measured ``--omnify-rounds`` times each in the order A B, B A, A B, ... (so a drift of the machine's
load weighs on both alike), each row's median reported, and ``omni_generic_tasks_per_s_mb<N>``,
``omnify_tasks_per_s_mb<N>``, ``omnify_over_omni_step_time_mb<N>`` (the omnified model's step time
over OmniMLP's, from the medians; 1 = as fast), ``omnify_over_omni_step_time_rounds_mb<N>``
(the ratio of each A B pair), and XLA's cost analysis of the two compiled steps,
``omnify_over_omni_flops_mb<N>`` and ``omnify_over_omni_bytes_mb<N>`` (the compiled work, which
the machine's load does not move; 1 = the same work).
``--rows`` names the default rows (``maml,omni``; empty for none), e.g. ``--rows= --omnify`` for
that comparison alone.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Optional

import numpy as np


def steps_for(meta_batch: int, steps: int) -> int:
    """Steps per timed call: fewer for larger batches (each call then takes about as long)."""
    return max(2, steps * 100 // meta_batch) if meta_batch > 100 else steps


def default_pre_per_task() -> int:
    """Pre-training points per task in the default sinusoid config (``pre_batch / meta_batch``)."""
    from omni_jax import config as config_lib
    t = config_lib.load_config("sinusoid").train
    return t.pre_batch // t.meta_batch


def plain_mlp(widths=(64, 64)):
    """The user's side of ``--omnify``: a plain Flax MLP, no Omni-Layers, made tri-flow by one line."""
    import flax.linen as nn
    import jax.numpy as jnp

    class MLP(nn.Module):
        widths: tuple = (64, 64)

        @nn.compact
        def __call__(self, x):
            for w in self.widths:
                x = jnp.tanh(nn.Dense(w)(x))
            return nn.Dense(1, name="head")(x)

    from omni_jax import omnify
    return omnify(MLP(tuple(widths)), head="head")


def jax_tasks_per_s(method: str, meta_batch: int, steps: int, repeats: int, impl: str, pre_per_task: int,
                    omnified: bool = False, cost: Optional[dict] = None) -> float:
    """Tasks per second of ``method``'s training step; with ``cost`` (a dict), also fills it with
    XLA's cost analysis of one chunk of steps (``flops``, ``bytes accessed``): the compiled work,
    free of the machine's load."""
    import jax

    from omni_jax import config as config_lib
    from omni_jax.sinusoid import train as tr
    cfg = config_lib.load_config("sinusoid")
    cfg = config_lib.apply_overrides(cfg, [
        f"train.meta_batch={meta_batch}", f"train.pre_batch={meta_batch * pre_per_task}", f"train.chunk_size={steps}",
        f"train.num_steps={steps * (repeats + 1)}", f"data.num_train_tasks={max(2000, meta_batch)}",
        f"train.maml_impl={impl}"])
    model = plain_mlp(cfg.model.widths) if omnified else None
    program = tr.setup(cfg, method, tr.training_set(cfg), model=model)
    if cost is not None:
        analysis = program.chunk.lowered(program.state, program.data).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
        cost.update({k: float(analysis.get(k, float("nan"))) for k in ("flops", "bytes accessed")})
    state, _ = program.chunk(program.state, program.data)  # compile + warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = program.chunk(state, program.data)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    return meta_batch * steps / float(np.median(times))


def torch_maml_tasks_per_s(meta_batch: int, steps: int, repeats: int) -> float:
    import torch
    from torch.func import functional_call, grad, vmap

    net = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 1))
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    inner_lr = 0.02

    def loss(p, x, y):
        return torch.mean((functional_call(net, p, (x,)) - y) ** 2)

    def task_loss(p, sx, sy, qx, qy):
        g = grad(loss)(p, sx, sy)
        adapted = {k: p[k] - inner_lr * g[k] for k in p}
        return loss(adapted, qx, qy)

    def one_step():
        amp = torch.rand(meta_batch) * 4.9 + 0.1
        phase = torch.rand(meta_batch) * 2 * np.pi
        x = torch.rand(meta_batch, 20, 1) * 10 - 5
        y = amp[:, None, None] * torch.sin(x - phase[:, None, None])
        losses = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(params, x[:, :10], y[:, :10], x[:, 10:], y[:, 10:])
        opt.zero_grad()
        losses.mean().backward()
        opt.step()

    for _ in range(max(2, steps // 10)):
        one_step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        times.append(time.perf_counter() - t0)
    return meta_batch * steps / float(np.median(times))


def worker(kind: str, meta_batch: int, steps: int, repeats: int, pre_per_task: int) -> None:
    """One measurement in this process; prints one JSON line."""
    cost = {}
    if kind == "torch":
        tps = torch_maml_tasks_per_s(meta_batch, steps, repeats)
    elif kind == "generic":
        tps = jax_tasks_per_s("maml", meta_batch, steps, repeats, "generic", pre_per_task)
    elif kind in ("omni_generic", "omnify"):
        tps = jax_tasks_per_s("omni", meta_batch, steps, repeats, "generic", pre_per_task,
                              omnified=(kind == "omnify"), cost=cost)
    else:
        tps = jax_tasks_per_s(kind, meta_batch, steps, repeats, "dense", pre_per_task)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "meta_batch": meta_batch, "tasks_per_s": tps, "peak_rss_mb": rss, **cost}))


def measure(kind: str, meta_batch: int, steps: int, repeats: int, pre_per_task: int):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", kind, str(meta_batch), str(steps),
                           str(repeats), str(pre_per_task)], capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"  {kind} at {meta_batch}: failed ({tail[0][:200]})", flush=True)
        return None
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed call at meta-batch <= 100")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the median is reported")
    parser.add_argument("--meta-batches", default="25,100,1000,3000,10000,30000")
    parser.add_argument("--torch", action="store_true", help="also time PyTorch torch.func MAML")
    parser.add_argument("--generic", action="store_true", help="also time JAX MAML with the generic inner loop")
    parser.add_argument("--omnify", action="store_true",
                        help="also time Omni-Training of omnify(plain MLP) against OmniMLP, both generic MAML")
    parser.add_argument("--omnify-rounds", type=int, default=2, help="measurements of each --omnify row")
    parser.add_argument("--rows", default="maml,omni", help="the default rows (maml, omni), comma-separated")
    parser.add_argument("--pre-per-task", type=int, default=None,
                        help="Omni-Training's pre-training points per task (pre_batch = this x meta-batch); "
                             "default: the sinusoid config's pre_batch / meta_batch")
    parser.add_argument("--worker", nargs=5, metavar=("KIND", "MB", "STEPS", "REPEATS", "PRE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, mb, steps, repeats, pre = args.worker
        return worker(kind, int(mb), int(steps), int(repeats), int(pre))
    pre = args.pre_per_task or default_pre_per_task()
    import jax
    device = f"{jax.devices()[0].platform} x{len(jax.devices())} ({jax.devices()[0].device_kind})"
    kinds = ([k for k in args.rows.split(",") if k] + (["generic"] if args.generic else [])
             + (["omni_generic", "omnify"] if args.omnify else []) + (["torch"] if args.torch else []))
    unknown = set(kinds) - {"maml", "omni", "generic", "omni_generic", "omnify", "torch"}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}")
    out, rows = {"device": device, "pre_points_per_task": pre}, []
    for mb in [int(v) for v in args.meta_batches.split(",")]:
        pair = ("omni_generic", "omnify")
        res = {k: None if k in pair else measure(k, mb, steps_for(mb, args.steps), args.repeats, pre) for k in kinds}
        if args.omnify:
            runs = {k: [] for k in pair}
            for r in range(args.omnify_rounds):
                for k in (pair if r % 2 == 0 else pair[::-1]):
                    runs[k].append(measure(k, mb, steps_for(mb, args.steps), args.repeats, pre))
            ok = [(a, b) for a, b in zip(*runs.values()) if a and b]
            if ok:
                out[f"omnify_over_omni_step_time_rounds_mb{mb}"] = [
                    round(a["tasks_per_s"] / b["tasks_per_s"], 3) for a, b in ok]
            for k in pair:
                got = [r for r in runs[k] if r]
                res[k] = got and {"tasks_per_s": float(np.median([r["tasks_per_s"] for r in got])),
                                  "peak_rss_mb": max(r["peak_rss_mb"] for r in got)} or None
                if got:
                    out[f"{k}_flops_mb{mb}"] = got[0].get("flops")
            if ok:
                a, b = ok[0]
                out[f"omnify_over_omni_flops_mb{mb}"] = round(b["flops"] / a["flops"], 6)
                out[f"omnify_over_omni_bytes_mb{mb}"] = round(b["bytes accessed"] / a["bytes accessed"], 6)
        for k, r in res.items():
            if r is None:
                continue
            out[f"{k}_tasks_per_s_mb{mb}"] = round(r["tasks_per_s"], 1)
            out[("peak_rss_mb" if k == "maml" else f"{k}_peak_rss_mb") + f"_mb{mb}"] = round(r["peak_rss_mb"])
        m = res.get("maml")
        if m and res.get("omni"):
            out[f"omni_over_maml_step_time_mb{mb}"] = round(m["tasks_per_s"] / res["omni"]["tasks_per_s"], 3)
        if res.get("omni_generic") and res.get("omnify"):
            out[f"omnify_over_omni_step_time_mb{mb}"] = round(
                res["omni_generic"]["tasks_per_s"] / res["omnify"]["tasks_per_s"], 3)
        if m and res.get("torch"):
            out[f"maml_over_torch_mb{mb}"] = round(m["tasks_per_s"] / res["torch"]["tasks_per_s"], 3)
        for k, r in res.items():
            if r is not None:
                rel = m["tasks_per_s"] / r["tasks_per_s"] if m else float("nan")
                rows.append((k, mb, r["tasks_per_s"], rel, r["peak_rss_mb"], 1e3 * r["peak_rss_mb"] / mb))
                print(f"  {k:<8}{mb:>8}{r['tasks_per_s']:>12.0f} tasks/s{r['peak_rss_mb']:>9.0f} MB", flush=True)
    print(f"device: {device}; Omni-Training's pre-training batch: {pre} points per task")
    print(f"{'row':<22}{'meta-batch':>11}{'tasks/s':>11}{'row step / jax maml step':>26}{'peak MB':>9}{'kB/task':>9}")
    names = {"maml": "maml (jax, dense)", "omni": "omni (jax)", "generic": "maml (jax, generic)",
             "omni_generic": "omni (jax, generic)", "omnify": "omnify (jax, generic)", "torch": "maml (torch.func)"}
    for k, mb, tps, rel, rss, per_task in rows:
        print(f"{names[k]:<22}{mb:>11}{tps:>11.0f}{rel:>26.2f}{rss:>9.0f}{per_task:>9.1f}")
    for key, ratio in out.items():
        if key.startswith("omnify_over_omni_step_time_mb"):
            print(f"omnify(plain MLP) step time / OmniMLP step time (generic MAML), meta-batch "
                  f"{key.rsplit('mb', 1)[1]}: {ratio:.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
