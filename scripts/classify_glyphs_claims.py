"""The §6.1 claims on the offline glyph benchmark: Omni-Training∘Proto vs ProtoNet vs Baseline (Conv-4, CPU).

    python scripts/classify_glyphs_claims.py --data-dir data/glyphs --workdir runs/glyph_claims \\
        [--protocols cross_task,cross_domain] [--methods protonet,baseline,omni_proto] [--steps 1000] \\
        [--train-way 20] [--extra --config.eval.num_tasks=600 ...]

Each (protocol, method) is one ``omni-jax classify`` run in
``WORKDIR/<protocol>/<method>`` (rerunning resumes it, or reuses its
``results.json`` when the command is the same); the merged
records go to ``WORKDIR/claims.json``, a table to ``WORKDIR/claims.md`` and
a figure (accuracy ± 95% CI, one panel per protocol) to ``WORKDIR/claims.png``.
Every method trains for the same number of steps, each step one mini-batch
of 64 and one 5-way 5-shot episode with 15 queries, and is tested on the
same 600 tasks per setting (5-way and 20-way, 1-shot and 5-shot).
``--train-way N`` trains the episodic methods (all but Baseline, the same N
for each) with N-way episodes, as Snell et al. train ProtoNet with more ways
than the test; Baseline has no training episodes and keeps the 5-way
validation episodes it selects its step with. Each record notes its
``train_way``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from omni_jax.classification.plots import plot_fewshot_accuracy

NON_EPISODIC = {"baseline"}   # trains on mini-batches only; its episodes are the validation ones


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--workdir", default="runs/glyph_claims")
    p.add_argument("--protocols", default="cross_task,cross_domain")
    p.add_argument("--methods", default="protonet,baseline,omni_proto")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--train-way", type=int, default=0,
                   help="n_way of the training episodes of the episodic methods (0: the config's, 5)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more omni-jax classify arguments")
    args = p.parse_args()
    wd = Path(args.workdir)
    records = []
    for protocol in args.protocols.split(","):
        for method in args.methods.split(","):
            run_dir = wd / protocol / method
            way = args.train_way if args.train_way and method not in NON_EPISODIC else 0
            cmd = [sys.executable, "-m", "omni_jax.cli", "classify", "--dataset", f"glyphs:{protocol}",
                   "--method", method, "--backbone", "conv4", "--data-dir", args.data_dir,
                   "--workdir", str(run_dir), "--no-progress",
                   f"--config.train.num_steps={args.steps}",
                   *([f"--config.train.n_way={way}"] if way else []), *args.extra]
            results = run_classify(cmd, run_dir, label=f"{protocol}/{method}")
            if results is None:
                continue
            for r in results:
                records.append(dict(r, protocol=protocol, train_way=train_way(cmd)))
            (wd / "claims.json").write_text(json.dumps(records, indent=1))
            (wd / "claims.md").write_text(table(records))
            plot_fewshot_accuracy(records, wd / "claims.png", label=labeller(records))
    print(table(records))
    print(f"wrote {wd / 'claims.json'}, {wd / 'claims.md'} and {wd / 'claims.png'}")


def finished(cmd, run_dir: Path):
    """The ``results.json`` records of ``run_dir`` if the same command wrote them, else ``None``."""
    done = run_dir / "claims_command.json"   # the command that wrote results.json
    if (run_dir / "results.json").exists() and done.exists() and json.loads(done.read_text()) == cmd[1:]:
        return json.loads((run_dir / "results.json").read_text())
    return None


def run_classify(cmd, run_dir: Path, label: str):
    """Runs one ``omni-jax classify`` command into ``run_dir`` and returns its ``results.json`` records, or
    ``None`` when it failed. A run whose ``results.json`` was written by the same command is reused as it is."""
    results = finished(cmd, run_dir)
    if results is not None:
        print(f"reusing {run_dir / 'results.json'} (same command)", flush=True)
        return results
    done = run_dir / "claims_command.json"
    done.unlink(missing_ok=True)
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"run failed with exit status {rc}", flush=True)
        return None
    done.write_text(json.dumps(cmd[1:]))
    print(f"{label}: {time.perf_counter() - t0:.0f}s", flush=True)
    return json.loads((run_dir / "results.json").read_text())


def train_way(cmd) -> int:
    """The n_way of a run's training episodes: the last --config.train.n_way= of its command, or the config's 5."""
    ways = [int(a.split("=", 1)[1]) for a in cmd if a.startswith("--config.train.n_way=")]
    return ways[-1] if ways else 5


def labeller(records):
    """Names a record's series: its method, its head where the method has several, its training episodes."""
    heads = {}
    for r in records:
        heads.setdefault(r["method"], set()).add(r["head"])

    def label(r):
        name = r["method"] + (f"/{r['head']}" if len(heads[r["method"]]) > 1 else "")
        return name if r["method"] in NON_EPISODIC else f"{name} ({r['train_way']}-way train)"
    return label


def table(records) -> str:
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    head = "| protocol | method | head | train way | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings) + " |"
    lines = [head, "|" + "---|" * (4 + len(settings))]
    rows = {}
    for r in records:
        key = (r["protocol"], r["method"], r["head"], r.get("train_way", 5))
        rows.setdefault(key, {})[(r["n_way"], r["k_shot"])] = r
    for (protocol, method, head_name, way), cells in rows.items():
        vals = [f"{cells[s]['accuracy']:.2f} ± {cells[s]['ci95']:.2f}" if s in cells else "-" for s in settings]
        tw = "-" if method in NON_EPISODIC else way
        lines.append(f"| {protocol} | {method} | {head_name} | {tw} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
