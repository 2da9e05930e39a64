"""Few-shot classification throughput: training steps/s per method, and the input pipeline's images/s.

    python benchmarks/classification_throughput.py                     # Conv-4, 28x28x1 (CPU)
    python benchmarks/classification_throughput.py --backbone resnet12 --image-size 84 --channels 3   # GPU

    python benchmarks/classification_throughput.py --pools reshape \
        --methods protonet,matchingnet,omni_matching,relationnet,omni_relation,gnn,omni_gnn,baseline_pp

A step is one training iteration of the method (§6.1): ProtoNet, MatchingNet
(with FCE), RelationNet and the GNN take a 5-way 5-shot 16-query episode (MAML
4 of them), Baseline and Baseline++ a mini-batch of 64, Omni∘X both (its
Omni-Loss runs the mini-batch on the joint and pre flows, the episode on the
joint and meta flows, plus the EMA teacher's two forward passes). The JSON has
``<method>_over_protonet`` for every method timed with ProtoNet and
``omni_<x>_over_<x>`` (Omni∘X against X alone; target <= 3.5x). Each
measurement runs ``--chunk`` jitted steps per call (sampling and augmentation
included, as in training) and reports the median over ``--repeats`` calls.
The last line printed is a JSON object.

``--torch`` (Conv-4 only) adds a PyTorch eager reference of the ProtoNet and
Baseline steps, timed interleaved with the JAX ones (one call of each in turn,
``--repeats`` rounds, medians) so that a machine shared with other jobs slows
both alike. What each row includes:

* JAX ``protonet`` / ``baseline``: the training step as in training: sampling
  the episode (or mini-batch) from the uint8 split on the device, random-crop
  augmentation, forward, backward, Adam, BatchNorm statistics.
* JAX ``... (no sampling)``: the same jitted step on one fixed, already
  augmented episode / mini-batch (``make_train_update``): the network, loss,
  backward and Adam only.
* torch: the same work in eager PyTorch (``torch.set_num_threads(--threads)``,
  channels_last): Conv-4 (3x3 conv 64 without bias, BatchNorm2d in train mode,
  ReLU, 2x2 MaxPool2d) on 28x28x1, Adam (lr 1e-3); ProtoNet: 5-way 5-shot
  16-query, squared Euclidean distances to the prototypes, cross-entropy;
  Baseline: linear head over the training classes, cross-entropy, batch 64.
  Each step also samples from the uint8 split on the host (torch ops: random
  classes and images, edge-padded random crop, /255), like the JAX step; the
  ``(no sampling)`` torch rows reuse one fixed batch.

``--threads`` sets torch's threads (default: all cores, like XLA). To compare
single-threaded, run with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``
and ``--threads 1``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax.classification.augment import AugmentConfig
from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import to_device
from omni_jax.classification.methods import method_spec
from omni_jax.classification.model import build_net
from omni_jax.classification.train import (TrainConfig, create_train_state, make_train_chunk, make_train_update,
                                            sample_training_data)


OMNI_PAIRS = (("omni_proto", "protonet"), ("omni_maml", "maml"), ("omni_matching", "matchingnet"),
              ("omni_relation", "relationnet"), ("omni_gnn", "gnn"))


def time_calls(fn, arg, repeats):
    out = fn(*arg)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*arg))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_method(method, args, split, pool="reshape"):
    spec = method_spec(method)
    tc = TrainConfig(n_way=5, k_shot=5, n_query=16, batch_size=64)
    net = build_net(spec, args.backbone, split.num_classes, tc.n_way, pool=pool)
    state = create_train_state(net, spec, tc, split.images.shape[1:], 0)
    chunk = make_train_chunk(net, spec, tc, AugmentConfig(crop_padding=args.crop), args.chunk)
    t0 = time.perf_counter()
    jax.block_until_ready(chunk(state, split))
    compile_s = time.perf_counter() - t0
    sec = time_calls(chunk, (state, split), args.repeats) / args.chunk
    return {"steps_per_s": 1.0 / sec, "ms_per_step": 1000 * sec, "compile_s": compile_s}


def jax_runners(method, args, split):
    """``(with sampling, without sampling)``: callables that each run ``--chunk`` steps and block."""
    spec = method_spec(method)
    tc = TrainConfig(n_way=5, k_shot=5, n_query=16, batch_size=64)
    net = build_net(spec, args.backbone, split.num_classes, tc.n_way)
    state = create_train_state(net, spec, tc, split.images.shape[1:], 0)
    aug = AugmentConfig(crop_padding=args.crop)
    chunk = make_train_chunk(net, spec, tc, aug, args.chunk)
    update = jax.jit(make_train_update(net, spec, tc))
    data = jax.jit(lambda k: sample_training_data(k, split, spec, tc, aug))(jax.random.PRNGKey(1))

    def sampled():
        jax.block_until_ready(chunk(state, split))

    def fixed():
        s = state
        for _ in range(args.chunk):
            s, _ = update(s, *data)
        jax.block_until_ready(s)

    sampled(), fixed()  # compile
    return sampled, fixed


def torch_runners(method, args, ds, threads):
    """The PyTorch eager reference (see the module doc): ``(with sampling, without sampling)``."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cl = torch.channels_last
    layers, cin = [], args.channels
    for _ in range(4):
        layers += [torch.nn.Conv2d(cin, 64, 3, padding=1, bias=False), torch.nn.BatchNorm2d(64),
                   torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)]
        cin = 64
    body = torch.nn.Sequential(*layers, torch.nn.Flatten()).to(memory_format=cl).train()
    head = torch.nn.Linear(64 * (args.image_size // 16) ** 2, ds.num_classes)
    params = list(body.parameters()) + (list(head.parameters()) if method == "baseline" else [])
    opt = torch.optim.Adam(params, lr=1e-3)

    images = torch.from_numpy(np.ascontiguousarray(ds.images))           # uint8 [N, H, W, C]
    labels = torch.from_numpy(np.asarray(ds.labels, np.int64))
    counts = torch.bincount(labels, minlength=ds.num_classes)
    table = torch.zeros(ds.num_classes, int(counts.max()), dtype=torch.int64)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    for c in range(ds.num_classes):
        table[c, :counts[c]] = order[starts[c]:starts[c] + counts[c]]
    n_way, k_shot, n_query, p = 5, 5, 16, args.crop
    h = w = args.image_size
    ar = torch.arange(h)

    def augment(x):                                                       # uint8 NHWC -> float NCHW
        x = x.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0)
        if p > 0:
            x = torch.nn.functional.pad(x, (p, p, p, p), mode="replicate")
            off = torch.randint(0, 2 * p + 1, (x.shape[0], 2))
            rows, cols = off[:, :1] + ar, off[:, 1:] + ar
            b = torch.arange(x.shape[0])[:, None, None, None]
            ch = torch.arange(x.shape[1])[None, :, None, None]
            x = x[b, ch, rows[:, None, :, None], cols[:, None, None, :]]
        return x.contiguous(memory_format=cl)

    def sample():
        if method == "baseline":
            idx = torch.randint(0, images.shape[0], (64,))
            return augment(images[idx]), labels[idx]
        per = k_shot + n_query
        classes = torch.multinomial((counts >= per).float(), n_way)
        u = torch.rand(n_way, table.shape[1])
        u = torch.where(torch.arange(table.shape[1])[None] < counts[classes][:, None], u, 2.0)
        idx = torch.gather(table[classes], 1, torch.argsort(u, 1)[:, :per])
        x = augment(images[torch.cat([idx[:, :k_shot].reshape(-1), idx[:, k_shot:].reshape(-1)])])
        return x, None

    yq = torch.arange(n_way).repeat_interleave(n_query)

    def step(x, y):
        if method == "baseline":
            loss = torch.nn.functional.cross_entropy(head(body(x)), y)
        else:
            f = body(x)
            proto = f[:n_way * k_shot].reshape(n_way, k_shot, -1).mean(1)
            q = f[n_way * k_shot:]
            d = (q.square().sum(1, keepdim=True) + proto.square().sum(1)[None] - 2.0 * q @ proto.T).clamp_min(0.0)
            loss = torch.nn.functional.cross_entropy(-d, yq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    fixed_data = sample()

    def sampled():
        for _ in range(args.chunk):
            step(*sample())

    def fixed():
        for _ in range(args.chunk):
            step(*fixed_data)

    sampled(), fixed()  # warm-up
    return sampled, fixed


def time_interleaved(runners, repeats):
    """Median seconds per call of each runner, calling them in turn ``repeats`` times."""
    times = {k: [] for k in runners}
    for _ in range(repeats):
        for k, fn in runners.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_torch(args, ds, split, results):
    """JAX and torch ProtoNet / Baseline steps timed interleaved; adds rows and ratios to ``results``."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed; skipping the PyTorch rows (pip install torch==2.13.0)")
        return
    if args.backbone != "conv4":
        print("--torch: the PyTorch reference is Conv-4 only; skipping it")
        return
    print(f"  JAX vs PyTorch {torch.__version__} eager (torch threads {args.threads}), timed interleaved:")
    print(f"    {'step':<30}{'JAX steps/s':>12}{'torch steps/s':>15}{'JAX / torch':>13}")
    for m in ("protonet", "baseline"):
        if m not in args.methods.split(","):
            continue
        j_s, j_f = jax_runners(m, args, split)
        t_s, t_f = torch_runners(m, args, ds, args.threads)
        sec = time_interleaved({"jax": j_s, "jax_fixed": j_f, "torch": t_s, "torch_fixed": t_f}, args.repeats)
        sps = {k: args.chunk / v for k, v in sec.items()}
        results[f"jax_{m}_steps_per_s"] = sps["jax"]
        results[f"jax_{m}_nosample_steps_per_s"] = sps["jax_fixed"]
        results[f"torch_{m}_steps_per_s"] = sps["torch"]
        results[f"torch_{m}_nosample_steps_per_s"] = sps["torch_fixed"]
        results[f"{m}_over_torch"] = sps["jax"] / sps["torch"]
        results[f"{m}_nosample_over_torch"] = sps["jax_fixed"] / sps["torch_fixed"]
        print(f"    {m + ' (sampling + augment)':<30}{sps['jax']:12.2f}{sps['torch']:15.2f}"
              f"{results[f'{m}_over_torch']:12.2f}x", flush=True)
        print(f"    {m + ' (no sampling)':<30}{sps['jax_fixed']:12.2f}{sps['torch_fixed']:15.2f}"
              f"{results[f'{m}_nosample_over_torch']:12.2f}x", flush=True)
    bench_conv_ops(args, results)
    results["torch_threads"] = args.threads
    results["xla_flags"] = os.environ.get("XLA_FLAGS", "")


def bench_conv_ops(args, results, batch=105, size=14, channels=64):
    """Where the gap to torch comes from: Conv-4's largest convolution (64 -> 64 channels, 3x3,
    14x14, one ProtoNet episode of 105 images), its forward pass and its weight gradient, JAX
    (XLA:CPU) against torch (oneDNN), timed interleaved."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, channels), np.float32)
    w = rng.standard_normal((3, 3, channels, 64), np.float32)
    g = rng.standard_normal((batch, size, size, 64), np.float32)
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    j_fwd = jax.jit(conv)
    j_wgrad = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    jx, jw, jg = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
    cl = torch.channels_last
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
    tg = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    np.testing.assert_allclose(np.asarray(j_wgrad(jx, jw, jg)).transpose(3, 2, 0, 1),
                               torch.nn.grad.conv2d_weight(tx, tw.shape, tg, padding=1).numpy(), rtol=1e-3, atol=0.5)
    runners = {"jax_fwd": lambda: j_fwd(jx, jw).block_until_ready(),
               "torch_fwd": lambda: F.conv2d(tx, tw, padding=1),
               "jax_wgrad": lambda: j_wgrad(jx, jw, jg).block_until_ready(),
               "torch_wgrad": lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, padding=1)}
    for fn in runners.values():
        fn()
    sec = time_interleaved(runners, max(5, args.repeats * 3))
    gflop = 2 * batch * size * size * 9 * channels * 64 / 1e9
    print(f"  one convolution, {channels}->64 channels 3x3 at {size}x{size}, batch {batch} ({gflop:.2f} GFLOP):")
    for op, label in (("fwd", "forward"), ("wgrad", "weight gradient")):
        jt, tt = sec[f"jax_{op}"], sec[f"torch_{op}"]
        results[f"conv_{op}_ms"] = {"jax": jt * 1e3, "torch": tt * 1e3}
        results[f"conv_{op}_over_torch"] = tt / jt
        print(f"    {label:<16} JAX {jt * 1e3:6.1f} ms ({gflop / jt:5.1f} GFLOP/s)  torch {tt * 1e3:6.1f} ms "
              f"({gflop / tt:5.1f} GFLOP/s)  JAX speed / torch {tt / jt:.2f}x", flush=True)


def bench_pipeline(args, split):
    spec = method_spec("omni_proto")
    tc = TrainConfig(n_way=5, k_shot=5, n_query=16, batch_size=64)
    aug = AugmentConfig(crop_padding=args.crop, flip=args.channels == 3, jitter=0.4 if args.channels == 3 else 0.0)
    n = 50

    @jax.jit
    def many(key):
        def body(c, k):
            b, e = sample_training_data(k, split, spec, tc, aug)
            return c + b["x"].sum() + e["support"]["x"].sum() + e["query"]["x"].sum(), None
        return jax.lax.scan(body, 0.0, jax.random.split(key, n))[0]

    sec = time_calls(many, (jax.random.PRNGKey(0),), args.repeats)
    images = n * (tc.batch_size + tc.n_way * (tc.k_shot + tc.n_query))
    return {"images_per_s": images / sec}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="conv4")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--classes", type=int, default=64)
    p.add_argument("--crop", type=int, default=2)
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default="protonet,omni_proto,baseline")
    p.add_argument("--pools", default="reshape,window", help="2x2 max-pool variants to time ProtoNet with (conv4)")
    p.add_argument("--torch", action="store_true", help="also time the PyTorch eager ProtoNet and Baseline steps")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads for --torch")
    args = p.parse_args()

    ds = synthetic_split(args.classes, 30, args.image_size, args.channels, seed=0)
    split = to_device(ds)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}); backbone {args.backbone}, "
          f"{args.image_size}x{args.image_size}x{args.channels}, 5-way 5-shot 16-query, batch 64")
    results = {"device": f"{dev.platform}:{dev.device_kind}", "backbone": args.backbone,
               "image": [args.image_size, args.image_size, args.channels]}
    for m in args.methods.split(","):
        r = bench_method(m, args, split)
        results[m] = r
        print(f"  {m:<11} {r['steps_per_s']:8.2f} steps/s  {r['ms_per_step']:8.1f} ms/step  (compile {r['compile_s']:.0f}s)",
              flush=True)
    if args.backbone == "conv4" and "protonet" in args.methods:
        for pool in args.pools.split(","):
            if pool == "reshape":
                continue
            r = bench_method("protonet", args, split, pool=pool)
            results[f"protonet_pool_{pool}"] = r
            print(f"  protonet with {pool} max-pool {r['steps_per_s']:8.2f} steps/s  {r['ms_per_step']:8.1f} ms/step",
                  flush=True)
    if args.torch:
        bench_torch(args, ds, split, results)
    pipe = bench_pipeline(args, split)
    results["pipeline"] = pipe
    print(f"  input pipeline (sample + augment, on device): {pipe['images_per_s']:,.0f} images/s")
    if "protonet" in results and "omni_proto" in results:
        results["omni_over_protonet"] = results["omni_proto"]["ms_per_step"] / results["protonet"]["ms_per_step"]
        print(f"  Omni-Proto step / ProtoNet step: {results['omni_over_protonet']:.2f}x (target <= 3.5x)")
    for m in args.methods.split(","):
        if m != "protonet" and "protonet" in results and m in results:
            results[f"{m}_over_protonet"] = results[m]["ms_per_step"] / results["protonet"]["ms_per_step"]
            print(f"  {m} step / ProtoNet step: {results[f'{m}_over_protonet']:.2f}x")
    for omni, alone in OMNI_PAIRS:
        if omni in results and alone in results and omni != "omni_proto":
            results[f"{omni}_over_{alone}"] = results[omni]["ms_per_step"] / results[alone]["ms_per_step"]
            print(f"  {omni} step / {alone} step: {results[f'{omni}_over_{alone}']:.2f}x (target <= 3.5x)")
    if "protonet_pool_window" in results:
        results["reshape_pool_speedup"] = (results["protonet_pool_window"]["ms_per_step"]
                                           / results["protonet"]["ms_per_step"])
        print(f"  reshape max-pool speed-up on the ProtoNet step: {results['reshape_pool_speedup']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
