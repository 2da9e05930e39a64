"""Chooses the sinusoid MLP's Dense initialisation on validation tasks (issue 12).

    python scripts/sinusoid_init.py --workdir runs/sinusoid_init \\
        [--inits lecun_normal,xavier_uniform,torch] [--quick] [--config.FIELD=VALUE ...]

For each initialisation (``model.kernel_init``, see ``omni_jax.nn.models.KERNEL_INITS``) the
sinusoid experiment is trained in ``WORKDIR/<init>`` (``omni_jax.sinusoid.train_and_evaluate``,
resuming; it also writes its test results there as usual), then every method is evaluated on new
**validation** tasks (PRNG stream ``validation``, never the test tasks): mean MSE ± 95% CI after 1
and ``eval.max_steps`` SGD steps for each K of ``eval.k_shots``. Prints a table, then a JSON line
``{"<init>/<method>/k<K>/s<steps>": mse}``.
"""
from __future__ import annotations

import argparse
import json

from omni_jax.config import apply_overrides, load_config
from omni_jax.sinusoid import evaluate as ev
from omni_jax.sinusoid.experiment import train_and_evaluate, trained_models


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="runs/sinusoid_init")
    p.add_argument("--inits", default="lecun_normal,xavier_uniform,torch")
    p.add_argument("--quick", action="store_true", help="the quick config (a smoke run)")
    args, overrides = p.parse_known_args()
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        p.error(f"unknown arguments {bad}")
    inits = args.inits.split(",")
    results = {}
    for init in inits:
        cfg = apply_overrides(load_config("sinusoid", quick=args.quick),
                              [o[len("--config."):] for o in overrides] + [f"model.kernel_init={init}"])
        wd = f"{args.workdir}/{init}"
        train_and_evaluate(cfg, wd, show_progress=False)
        results[init] = ev.evaluate(trained_models(cfg, wd), cfg, stream="validation")
    last = cfg.eval.max_steps
    cell = {(init, r["method"], r["k_shot"], r["steps"]): r for init, rs in results.items() for r in rs}
    methods = [r["method"] for r in results[inits[0]] if r["k_shot"] == cfg.eval.k_shots[0] and r["steps"] == 1]
    print(f"Validation MSE ± 95% CI ({cfg.eval.num_tasks} new validation tasks per K) after 1 / {last} steps")
    print("| method | K | " + " | ".join(f"{i}, 1 step | {i}, {last} steps" for i in inits) + " |")
    print("|---|---|" + "---|---|" * len(inits))
    for m in methods:
        for k in cfg.eval.k_shots:
            vals = [f"{cell[i, m, k, s]['mse']:.3f} ± {cell[i, m, k, s]['ci95']:.3f}" for i in inits for s in (1, last)]
            print(f"| {m} | {k} | " + " | ".join(vals) + " |")
    print(json.dumps({f"{i}/{m}/k{k}/s{s}": round(r["mse"], 5) for (i, m, k, s), r in cell.items()
                      if s in (1, last)}))


if __name__ == "__main__":
    main()
