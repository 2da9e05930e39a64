"""The §6.1 claims on the offline glyph benchmark: Omni-Training∘Proto vs ProtoNet vs Baseline (Conv-4, CPU).

    python experiments/classify_glyphs_claims.py --data-dir /work/data/glyphs --workdir runs/glyph_claims \\
        [--protocols cross_task,cross_domain] [--methods protonet,baseline,omni_proto] [--steps 1000] \\
        [--extra --config.eval.num_tasks=600 ...]

Each (protocol, method) is one ``omni-jax classify`` run in
``WORKDIR/<protocol>/<method>`` (rerunning resumes or reuses it); the merged
records go to ``WORKDIR/claims.json`` and a table to ``WORKDIR/claims.md``.
Every method trains for the same number of steps, each step one mini-batch
of 64 and one 5-way 5-shot episode with 15 queries, and is tested on the
same 600 tasks per setting (5-way and 20-way, 1-shot and 5-shot).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--workdir", default="runs/glyph_claims")
    p.add_argument("--protocols", default="cross_task,cross_domain")
    p.add_argument("--methods", default="protonet,baseline,omni_proto")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more omni-jax classify arguments")
    args = p.parse_args()
    wd = Path(args.workdir)
    records = []
    for protocol in args.protocols.split(","):
        for method in args.methods.split(","):
            run_dir = wd / protocol / method
            cmd = [sys.executable, "-m", "omni_jax.cli", "classify", "--dataset", f"glyphs:{protocol}",
                   "--method", method, "--backbone", "conv4", "--data-dir", args.data_dir,
                   "--workdir", str(run_dir), "--no-progress",
                   f"--config.train.num_steps={args.steps}", *args.extra]
            print("$", " ".join(cmd), flush=True)
            rc = subprocess.call(cmd)
            if rc != 0:
                print(f"run failed with exit status {rc}", flush=True)
                continue
            for r in json.loads((run_dir / "results.json").read_text()):
                records.append(dict(r, protocol=protocol))
            (wd / "claims.json").write_text(json.dumps(records, indent=1))
            (wd / "claims.md").write_text(table(records))
    print(table(records))


def table(records) -> str:
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    head = "| protocol | method | head | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings) + " |"
    lines = [head, "|" + "---|" * (3 + len(settings))]
    rows = {}
    for r in records:
        rows.setdefault((r["protocol"], r["method"], r["head"]), {})[(r["n_way"], r["k_shot"])] = r
    for (protocol, method, head_name), cells in rows.items():
        vals = [f"{cells[s]['accuracy']:.2f} ± {cells[s]['ci95']:.2f}" if s in cells else "-" for s in settings]
        lines.append(f"| {protocol} | {method} | {head_name} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
