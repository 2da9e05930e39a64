"""Meta-training throughput on sinusoid regression: MAML against Omni-Training.

    python benchmarks/sinusoid_throughput.py [--steps 200] [--torch]

The paper's network (2×64 tanh), K = 10 support and 10 query points, one
second-order inner step, at meta-batch 25 and 1000, on the current device,
after warm-up. Each row is the jitted training step of ``omni_jax.sinusoid``
run as a ``lax.scan`` of ``--steps`` steps (tasks sampled inside jit). The
Omni/MAML ratio is measured in the same run, so it is comparable across
machines. ``--torch`` adds plain MAML in PyTorch with ``torch.func`` (same
network, same shapes, second-order) when torch is installed. The last line
is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from omni_jax import config as config_lib
from omni_jax.sinusoid import train as tr


def jax_tasks_per_s(method: str, meta_batch: int, steps: int, repeats: int) -> float:
    cfg = config_lib.load_config("sinusoid")
    cfg.train.meta_batch = meta_batch
    cfg.train.pre_batch = meta_batch * (cfg.train.k_shot + cfg.train.k_query)
    cfg.train.num_steps = steps * (repeats + 1)
    cfg.data.num_train_tasks = max(2000, meta_batch)
    cfg.train.chunk_size = steps
    program = tr.setup(cfg, method, tr.training_set(cfg))
    chunk, state, data = program.chunk, program.state, program.data
    state, m = chunk(state, data)  # compile + warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, m = chunk(state, data)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    return meta_batch * steps / float(np.median(times))


def torch_maml_tasks_per_s(meta_batch: int, steps: int, repeats: int) -> float:
    """Second-order MAML on the same 2×64 tanh MLP with torch.func (vmap over tasks)."""
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

    for _ in range(max(3, steps // 10)):
        one_step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        times.append(time.perf_counter() - t0)
    return meta_batch * steps / float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the median is reported")
    parser.add_argument("--meta-batches", default="25,1000")
    parser.add_argument("--torch", action="store_true", help="also time PyTorch torch.func MAML")
    args = parser.parse_args()
    device = f"{jax.devices()[0].platform} x{len(jax.devices())} ({jax.devices()[0].device_kind})"
    out, rows = {}, []
    for mb in [int(v) for v in args.meta_batches.split(",")]:
        steps = max(5, args.steps // max(1, mb // 100)) if mb > 100 else args.steps
        maml = jax_tasks_per_s("maml", mb, steps, args.repeats)
        omni = jax_tasks_per_s("omni", mb, steps, args.repeats)
        out[f"maml_tasks_per_s_mb{mb}"] = round(maml, 1)
        out[f"omni_tasks_per_s_mb{mb}"] = round(omni, 1)
        rows.append(("maml (jax)", mb, maml, 1.0))
        rows.append(("omni (jax)", mb, omni, maml / omni))
        out[f"omni_over_maml_step_time_mb{mb}"] = round(maml / omni, 3)
        if args.torch:
            try:
                t = torch_maml_tasks_per_s(mb, steps, args.repeats)
            except ImportError:
                print("torch is not installed; skipping the PyTorch row (pip install torch==2.13.0)")
            else:
                out[f"torch_maml_tasks_per_s_mb{mb}"] = round(t, 1)
                out[f"jax_over_torch_maml_speed_mb{mb}"] = round(maml / t, 3)
                rows.append(("maml (torch.func)", mb, t, maml / t))
    print(f"device: {device}")
    print(f"{'method':<20}{'meta-batch':>11}{'tasks/s':>12}{'step time / jax maml':>22}")
    for name, mb, tps, ratio in rows:
        print(f"{name:<20}{mb:>11}{tps:>12.1f}{ratio:>22.2f}")
    out["device"] = device
    print(json.dumps(out))


if __name__ == "__main__":
    main()
