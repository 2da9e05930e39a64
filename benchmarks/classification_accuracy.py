"""Few-shot accuracy of omni-jax's ProtoNet side by side with a PyTorch reference (issue 12).

    python benchmarks/classification_accuracy.py --data-dir data/glyphs --protocol cross_domain \\
        --splits val,test/Arabic --steps 1000 --torch
    python benchmarks/classification_accuracy.py ... --no-jax --torch --torch-init default,he_normal_fan_in \\
        --torch-distance euclidean,squared          # the PyTorch side alone, several variants

Both sides train a plain Conv-4 ProtoNet (4 x [3x3 conv 64, BatchNorm, ReLU, 2x2 max-pool], 64
features on 28x28 glyphs) for ``--steps`` steps of 5-way 5-shot 15-query episodes of the protocol's
training classes with Adam (lr 1e-3) and a random 28x28 crop of the image padded by 2, and take the
final model (no early stopping). They are then scored on the very same test tasks (``--tasks`` per
setting and split, 15 queries per class) by nearest prototype with BatchNorm's running averages.

* omni-jax: ``load_config("classify_glyphs")``, a few overrides, and
  ``omni_jax.classification.train_and_evaluate(cfg, workdir)`` with method ``--method`` (``protonet``,
  or ``omni_proto``: Omni-Training∘Proto scored with its default ensemble head); each further
  split is evaluated on the finished work directory (``evaluate_only=True``), never retrained.
  Its initialisation and distance are the library's defaults (``model.conv_init="torch"``, PyTorch's
  ``default`` below; ``train.proto_distance="euclidean"``); ``--jax-override`` changes them, e.g.
  ``--jax-override=--config.model.conv_init=he_normal --jax-override=--config.train.proto_distance=squared``
  (omni-jax before issue 12).
* PyTorch (``--torch``; torch is imported only then): the same network and step written here in
  plain torch, one variant per ``--torch-init`` x ``--torch-distance``:

  - ``default``: PyTorch's own conv initialisation, ``kaiming_uniform_(a=sqrt(5))``
    (std = 1/sqrt(3 fan_in)); the bias too (it is cancelled by the BatchNorm after it);
  - ``lecun_normal``: Flax's default ``nn.Conv`` initialisation (truncated normal, std 1/sqrt(fan_in));
  - ``he_normal_fan_in``: Flax's ``kaiming_normal`` (truncated normal, std sqrt(2/fan_in)), omni-jax's
    ``model.conv_init="he_normal"`` (its default before issue 12);
  - ``he_normal_fan_out``: Chen et al.'s Conv-4 (normal, std sqrt(2/(9 * out_channels)));

  and the training distance ``euclidean`` (``torch.cdist``, as easyfsl; omni-jax's default) or
  ``squared`` (Snell et al.). At test time both distances rank the prototypes the same way, so the distance only
  changes training.

The glyphs are read with omni-jax's loader (``omni_jax.data.formats.load_dataset``), so both sides
see the same images; the test tasks are drawn by omni-jax's own sampler from the keys its evaluator
uses (``prng_stream(eval.seed, "test", n_way, k_shot)`` folded with the task index), so the two
sides are scored on identical tasks. omni-jax pads with the edge pixel before its crop; the PyTorch
side pads with zeros (``--torch-pad edge`` to match): glyphs are ink on a zero background, so the two
differ only where ink touches the border.

Prints a table (accuracy ± 95% CI in %, one column per split and setting) and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

INITS = ("default", "lecun_normal", "he_normal_fan_in", "he_normal_fan_out")
# omni-jax's model.conv_init under the names of the PyTorch side's --torch-init
JAX_INIT_NAMES = {"torch": "default", "he_normal": "he_normal_fan_in", "lecun_normal": "lecun_normal"}
DISTANCES = ("euclidean", "squared")


# ---------------------------------------------------------------------------- data and tasks (no torch)


def parse_settings(text: str) -> List[tuple]:
    """``"5x1,20x1"`` -> ``[(5, 1), (20, 1)]``."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        n, sep, k = item.partition("x")
        if not sep or not n.isdigit() or not k.isdigit() or int(n) < 2 or int(k) < 1:
            raise SystemExit(f"--settings: expected N_WAYxK_SHOT items like 5x1,20x1, got {item!r}")
        out.append((int(n), int(k)))
    return out


def load_split(data_dir: str, protocol: str, split: str):
    """One split of the glyph benchmark through omni-jax's loader (uint8 ``[N, 28, 28, 1]``)."""
    from omni_jax.data.formats import load_dataset
    return load_dataset(f"glyphs:{protocol}", data_dir, split, None)


def task_indices(labels: np.ndarray, num_classes: int, n_way: int, k_shot: int, n_query: int,
                 num_tasks: int, seed: int) -> dict:
    """The image indices of omni-jax's test tasks: ``{"support" [T, N*K], "support_y", "query" [T, N*Q],
    "query_y"}``, drawn by ``omni_jax.classification.episodes.sample_episode`` from the keys of its
    evaluator (``prng_stream(seed, "test", n_way, k_shot)`` folded with the task index) on a split
    whose "images" are the image indices, so they are the very tasks omni-jax scores."""
    import jax
    import jax.numpy as jnp

    from omni_jax.classification.episodes import DeviceSplit, sample_episode
    from omni_jax.training import prng_stream

    labels = np.asarray(labels, np.int32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int32)
    table = np.zeros((num_classes, max(int(counts.max()), 1)), np.int32)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c in range(num_classes):
        table[c, :counts[c]] = order[starts[c]:starts[c] + counts[c]]
    split = DeviceSplit(images=jnp.arange(len(labels), dtype=jnp.int32), labels=jnp.asarray(labels),
                        class_table=jnp.asarray(table), class_counts=jnp.asarray(counts))
    base = prng_stream(seed, "test", n_way, k_shot)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_tasks))
    eps = jax.jit(jax.vmap(lambda k: sample_episode(k, split, n_way, k_shot, n_query)))(keys)
    return {"support": np.asarray(eps["support"]["x"]), "support_y": np.asarray(eps["support"]["y"]),
            "query": np.asarray(eps["query"]["x"]), "query_y": np.asarray(eps["query"]["y"])}


def prototype_accuracies(features: np.ndarray, tasks: dict, n_way: int) -> np.ndarray:
    """Per-task nearest-prototype accuracy (in [0, 1]) of ``features [N, D]`` on ``tasks``."""
    f = np.asarray(features, np.float64)
    fs, fq = f[tasks["support"]], f[tasks["query"]]                         # [T, S, D], [T, Q, D]
    onehot = np.eye(n_way)[tasks["support_y"]]                              # [T, S, N]
    protos = np.einsum("tsn,tsd->tnd", onehot, fs) / onehot.sum(1)[:, :, None]
    d = (np.square(fq).sum(-1)[:, :, None] + np.square(protos).sum(-1)[:, None, :]
         - 2.0 * np.einsum("tqd,tnd->tqn", fq, protos))
    return np.mean(np.argmin(d, axis=-1) == tasks["query_y"], axis=-1)


def summarize(accs: np.ndarray) -> tuple:
    from omni_jax.training.metrics import mean_ci95
    m, ci = mean_ci95(np.asarray(accs, np.float64) * 100.0)
    return round(float(m), 3), round(float(ci), 3)


class EpisodeSampler:
    """Host-side N-way K-shot Q-query training episodes with the random crop (numpy), for the PyTorch side:
    ``n_way`` distinct classes among those with >= K+Q images, K+Q distinct images of each, class-major."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, n_way: int, k_shot: int, n_query: int,
                 padding: int, pad_mode: str, seed: int):
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query
        self.padding, self.pad_mode = padding, pad_mode
        self.rng = np.random.default_rng(seed)
        by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        self.by_class = [ix for ix in by_class if len(ix) >= k_shot + n_query]
        if len(self.by_class) < n_way:
            raise SystemExit(f"the training split has {len(self.by_class)} classes with >= {k_shot + n_query} "
                             f"images; {n_way}-way episodes need {n_way}")

    def crop(self, x: np.ndarray) -> np.ndarray:
        """A random crop of the original size from ``x [B, H, W, C]`` padded by ``padding``."""
        p = self.padding
        if p <= 0:
            return x
        b, h, w, _ = x.shape
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge" if self.pad_mode == "edge" else "constant")
        off = self.rng.integers(0, 2 * p + 1, (b, 2))
        return np.stack([padded[i, o[0]:o[0] + h, o[1]:o[1] + w] for i, o in enumerate(off)])

    def __call__(self):
        """``(x float32 [N*(K+Q), H, W, C] in [0, 1], support size)``: the support first, then the queries."""
        per = self.k_shot + self.n_query
        classes = self.rng.choice(len(self.by_class), self.n_way, replace=False)
        idx = np.stack([self.rng.choice(self.by_class[c], per, replace=False) for c in classes])   # [N, K+Q]
        idx = np.concatenate([idx[:, :self.k_shot].reshape(-1), idx[:, self.k_shot:].reshape(-1)])
        x = self.crop(self.images[idx].astype(np.float32) * (1.0 / 255.0))
        return x, self.n_way * self.k_shot


# ---------------------------------------------------------------------------- the PyTorch reference


def torch_reference(train_images, train_labels, eval_images: Dict[str, np.ndarray], *, init: str, distance: str,
                    steps: int, lr: float, n_way: int, k_shot: int, n_query: int, padding: int, pad_mode: str,
                    seed: int, threads: int, log=print) -> dict:
    """Trains the PyTorch Conv-4 ProtoNet; returns ``{"features": {split: [N, 64]}, "train_s", "loss"}``."""
    import torch
    from torch import nn

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)

    def block(cin):
        return [nn.Conv2d(cin, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(*block(train_images.shape[-1]), *block(64), *block(64), *block(64), nn.Flatten())
    for m in model.modules():
        if not isinstance(m, nn.Conv2d) or init == "default":
            continue
        cout, cin, kh, kw = m.weight.shape
        fan_in, fan_out = cin * kh * kw, cout * kh * kw
        with torch.no_grad():
            if init == "he_normal_fan_out":           # Chen et al.: normal_(0, sqrt(2 / (k*k*out_channels)))
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
            else:                                     # flax variance_scaling(scale, "fan_in", "truncated_normal")
                scale = 1.0 if init == "lecun_normal" else 2.0
                std = math.sqrt(scale / fan_in) / 0.87962566103423978
                nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
            m.bias.zero_()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sample = EpisodeSampler(train_images, train_labels, n_way, k_shot, n_query, padding, pad_mode, seed)
    yq = torch.arange(n_way).repeat_interleave(n_query)
    model.train()
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        x, s = sample()
        f = model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
        protos = f[:s].reshape(n_way, k_shot, -1).mean(1)
        if distance == "euclidean":
            d = torch.cdist(f[s:], protos)
        else:
            d = (f[s:, None, :] - protos[None]).square().sum(-1)
        loss = nn.functional.cross_entropy(-d, yq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if (step + 1) % max(steps // 10, 1) == 0:
            log(f"  torch {init}/{distance}: step {step + 1}/{steps}, loss {np.mean(losses[-50:]):.4f}, "
                f"{time.perf_counter() - t0:.0f}s")
    train_s = time.perf_counter() - t0
    model.eval()
    feats = {}
    with torch.no_grad():
        for name, images in eval_images.items():
            xs = torch.from_numpy(images.astype(np.float32) * (1.0 / 255.0)).permute(0, 3, 1, 2)
            feats[name] = torch.cat([model(xs[i:i + 1024].contiguous()) for i in range(0, len(xs), 1024)]).numpy()
    return {"features": feats, "train_s": train_s, "loss": float(np.mean(losses[-50:]))}


# ---------------------------------------------------------------------------- omni-jax


def jax_config(args, split: str):
    from omni_jax.config import apply_overrides, load_config
    cfg = load_config("classify_glyphs")
    cfg.seed = args.seed
    cfg.data.dataset = f"glyphs:{args.protocol}"
    cfg.data.dir = args.data_dir
    cfg.data.test_split = split
    cfg.data.crop_padding = args.crop_padding
    cfg.train.methods = (args.method,)
    cfg.train.num_steps = args.steps
    cfg.train.chunk_size = math.gcd(100, args.steps)
    cfg.train.val_every = args.steps            # one validation, at the end: the final model is tested
    cfg.train.ckpt_every = args.steps
    cfg.train.n_way, cfg.train.k_shot, cfg.train.n_query = args.train_way, args.train_shot, args.train_query
    cfg.train.lr = args.lr
    cfg.eval.num_tasks = args.tasks
    cfg.eval.n_query = args.n_query
    cfg.eval.settings = tuple(args.settings)
    return apply_overrides(cfg, args.jax_override)


def run_jax(args, log=print) -> List[dict]:
    from omni_jax.classification import train_and_evaluate
    rows = []
    workdir = Path(args.workdir)
    for i, split in enumerate(args.splits):
        t0 = time.perf_counter()
        cfg = jax_config(args, split)
        records = train_and_evaluate(cfg, workdir, show_progress=False,
                                     evaluate_only=i > 0, log=lambda m: None)
        took = time.perf_counter() - t0
        log(f"omni-jax: {'trained and ' if i == 0 else ''}evaluated on {split} in {took:.0f}s")
        for r in records:
            rows.append({"side": "omni-jax", "variant": args.method + (" " + " ".join(args.jax_override)
                                                                        if args.jax_override else ""),
                         "init": JAX_INIT_NAMES[cfg.model.conv_init], "distance": cfg.train.proto_distance,
                         "split": split,
                         "n_way": r["n_way"], "k_shot": r["k_shot"], "accuracy": r["accuracy"], "ci95": r["ci95"],
                         "num_tasks": r["num_tasks"], "steps": args.steps, "seed": args.seed,
                         "seconds": round(took, 1)})
    return rows


# ---------------------------------------------------------------------------- report


def _cell(r) -> str:
    return f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" if r else "-"


def table(rows: Sequence[dict]) -> str:
    cols = list(dict.fromkeys((r["split"], r["n_way"], r["k_shot"]) for r in rows))
    variants = list(dict.fromkeys((r["side"], r["variant"]) for r in rows))
    by = {(r["side"], r["variant"], r["split"], r["n_way"], r["k_shot"]): r for r in rows}
    w = max([16] + [len(f"{s} {n}w{k}s") + 2 for s, n, k in cols])
    name_w = max(len(f"{s} {v}") for s, v in variants) + 2
    lines = [f"{'':<{name_w}}" + "".join(f"{f'{s} {n}w{k}s':>{w}}" for s, n, k in cols)]
    for side, variant in variants:
        cells = [by.get((side, variant) + c) for c in cols]
        lines.append(f"{side + ' ' + variant:<{name_w}}" + "".join(f"{_cell(r):>{w}}" for r in cells))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="the built glyph benchmark (omni-jax data glyphs --out DIR)")
    p.add_argument("--protocol", default="cross_domain")
    p.add_argument("--splits", default="val", help="comma-separated evaluation splits (val, test/Arabic, ...)")
    p.add_argument("--settings", default="5x1,20x1,5x5", help="N_WAYxK_SHOT test settings")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", type=int, default=600, help="test tasks per setting and split")
    p.add_argument("--n-query", type=int, default=15, help="queries per class of a test task")
    p.add_argument("--eval-seed", type=int, default=1234, help="the test tasks' key (omni-jax's eval.seed)")
    p.add_argument("--train-way", type=int, default=5)
    p.add_argument("--train-shot", type=int, default=5)
    p.add_argument("--train-query", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--crop-padding", type=int, default=2)
    p.add_argument("--jax", dest="jax", action="store_true", default=True)
    p.add_argument("--no-jax", dest="jax", action="store_false", help="the PyTorch side alone")
    p.add_argument("--method", default="protonet", choices=("protonet", "omni_proto"),
                   help="omni-jax's method: ProtoNet, or Omni-Training∘Proto (its default ensemble head)")
    p.add_argument("--jax-override", action="append", default=[], metavar="--config.FIELD=VALUE",
                   help="an override of omni-jax's config (repeatable), e.g. --jax-override=--config.train.lr=2e-3")
    p.add_argument("--workdir", default="", help="omni-jax's work directory (default runs/classification_accuracy/"
                                                  "<protocol>_s<steps>_seed<seed>); finished runs are reused")
    p.add_argument("--torch", action="store_true", help="also train the PyTorch reference (imports torch)")
    p.add_argument("--torch-init", default="default", help=f"comma-separated, of {', '.join(INITS)}")
    p.add_argument("--torch-distance", default="euclidean", help=f"comma-separated, of {', '.join(DISTANCES)}")
    p.add_argument("--torch-pad", default="zero", choices=("zero", "edge"), help="the crop's padding")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json-out", default="", help="also append the JSON line to this file")
    args = p.parse_args(argv)
    args.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    args.settings = parse_settings(args.settings)
    inits = [s.strip() for s in args.torch_init.split(",") if s.strip()]
    dists = [s.strip() for s in args.torch_distance.split(",") if s.strip()]
    bad = [i for i in inits if i not in INITS] + [d for d in dists if d not in DISTANCES]
    if bad:
        p.error(f"unknown --torch-init/--torch-distance value(s) {bad}; expected {INITS} / {DISTANCES}")
    if args.steps < 1 or (args.steps % 100 and 100 % args.steps):
        p.error("--steps must be a multiple or divisor of 100")
    if not args.jax and not args.torch:
        p.error("nothing to run: --no-jax without --torch")
    args.workdir = args.workdir or f"runs/classification_accuracy/{args.protocol}_s{args.steps}_seed{args.seed}"
    # (one work directory holds every method; an old one trained under other defaults is an
    # 'incompatible config' error naming the changed fields, never silently reused)
    log = lambda m: print(m, flush=True)

    rows = []
    if args.jax:
        rows += run_jax(args, log)
    if args.torch:
        train = load_split(args.data_dir, args.protocol, "train")
        evals = {s: load_split(args.data_dir, args.protocol, s) for s in args.splits}
        tasks = {(s, n, k): task_indices(ds.labels, ds.num_classes, n, k, args.n_query, args.tasks, args.eval_seed)
                 for s, ds in evals.items() for n, k in args.settings}
        log(f"torch reference: {args.protocol} train {train.num_classes} classes / {len(train.labels)} images; "
            + ", ".join(f"{s} {ds.num_classes} classes" for s, ds in evals.items()))
        for init in inits:
            for dist in dists:
                out = torch_reference(train.images, train.labels, {s: ds.images for s, ds in evals.items()},
                                      init=init, distance=dist, steps=args.steps, lr=args.lr, n_way=args.train_way,
                                      k_shot=args.train_shot, n_query=args.train_query, padding=args.crop_padding,
                                      pad_mode=args.torch_pad, seed=args.seed, threads=args.threads, log=log)
                log(f"torch {init}/{dist}: trained in {out['train_s']:.0f}s, final loss {out['loss']:.4f}")
                for (s, n, k), t in tasks.items():
                    acc, ci = summarize(prototype_accuracies(out["features"][s], t, n))
                    rows.append({"side": "torch", "variant": f"init={init} dist={dist}", "init": init,
                                 "distance": dist, "split": s, "n_way": n, "k_shot": k, "accuracy": acc, "ci95": ci,
                                 "num_tasks": args.tasks, "steps": args.steps, "seed": args.seed,
                                 "seconds": round(out["train_s"], 1), "final_loss": round(out["loss"], 4)})
    print(f"\nProtoNet Conv-4, glyphs:{args.protocol}, {args.steps} steps of {args.train_way}-way "
          f"{args.train_shot}-shot {args.train_query}-query episodes, seed {args.seed}; accuracy (%) ± 95% CI over "
          f"{args.tasks} tasks ({args.n_query} queries per class), the same tasks on both sides")
    print(table(rows))
    line = json.dumps({"benchmark": "classification_accuracy", "protocol": args.protocol, "steps": args.steps,
                       "seed": args.seed, "rows": rows})
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as fh:
            fh.write(line + "\n")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
