"""Few-shot classification throughput: training steps/s per method, and the input pipeline's images/s.

    python benchmarks/classification_throughput.py                     # Conv-4, 28x28x1 (CPU)
    python benchmarks/classification_throughput.py --backbone resnet12 --image-size 84 --channels 3   # GPU

A step is one training iteration of the method (§6.1): ProtoNet takes a 5-way
5-shot 16-query episode, Baseline a mini-batch of 64, Omni-Proto both (its
Omni-Loss runs the mini-batch on the joint and pre flows, the episode on the
joint and meta flows, plus the EMA teacher's two forward passes). Each
measurement runs ``--chunk`` jitted steps per call (sampling and augmentation
included, as in training) and reports the median over ``--repeats`` calls.
The last line printed is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp

from omni_jax.classification.augment import AugmentConfig
from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import to_device
from omni_jax.classification.methods import method_spec
from omni_jax.classification.model import build_net
from omni_jax.classification.train import TrainConfig, create_train_state, make_train_chunk, sample_training_data


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
    pipe = bench_pipeline(args, split)
    results["pipeline"] = pipe
    print(f"  input pipeline (sample + augment, on device): {pipe['images_per_s']:,.0f} images/s")
    if "protonet" in results and "omni_proto" in results:
        results["omni_over_protonet"] = results["omni_proto"]["ms_per_step"] / results["protonet"]["ms_per_step"]
        print(f"  Omni-Proto step / ProtoNet step: {results['omni_over_protonet']:.2f}x (target <= 3.5x)")
    if "protonet_pool_window" in results:
        results["reshape_pool_speedup"] = (results["protonet_pool_window"]["ms_per_step"]
                                           / results["protonet"]["ms_per_step"])
        print(f"  reshape max-pool speed-up on the ProtoNet step: {results['reshape_pool_speedup']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
