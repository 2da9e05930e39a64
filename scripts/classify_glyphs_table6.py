"""Table 6 on the glyph benchmark: the ablation of the Omni-Loss terms (Omni∘Proto, Conv-4).

    python scripts/classify_glyphs_table6.py --data-dir data/glyphs --workdir runs/glyph_table6 \\
        [--protocol cross_task] [--steps 1000] [--rows 1,2,3,4,5,6] [--extra --config.eval.num_tasks=600]

Each row trains Omni∘Proto with a subset of the terms (pre, meta, joint, R_pre, R_meta) through
``classify_glyphs_claims.py`` in ``WORKDIR/row<i>``; flows whose loss is off are left out at
inference. The table (5-way 5-shot, as in the paper, plus the other settings) goes to stdout and
``WORKDIR/table6.md``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# (pre, meta, joint, R_pre, R_meta), the rows of Table 6
ROWS = [(1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 1, 0, 0), (1, 1, 0, 0, 0), (1, 1, 1, 0, 0), (1, 1, 1, 1, 1)]


def row_overrides(pre, meta, joint, r_pre, r_meta):
    flags = {"pre": pre, "meta": meta, "joint_pre": joint, "joint_meta": joint,
             "distill_pre": r_pre, "distill_meta": r_meta}
    return [f"--config.omni.{k}={bool(v)}" for k, v in flags.items()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--workdir", default="runs/glyph_table6")
    p.add_argument("--protocol", default="cross_task")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rows", default=",".join(str(i + 1) for i in range(len(ROWS))))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args()
    wd = Path(args.workdir)
    claims = Path(__file__).with_name("classify_glyphs_claims.py")
    lines = ["| pre | meta | joint | R_pre | R_meta | setting | accuracy |", "|---|---|---|---|---|---|---|"]
    for i in [int(r) for r in args.rows.split(",")]:
        row = ROWS[i - 1]
        run = wd / f"row{i}"
        cmd = [sys.executable, str(claims), "--data-dir", args.data_dir, "--workdir", str(run),
               "--protocols", args.protocol, "--methods", "omni_proto", "--steps", str(args.steps),
               "--extra", *row_overrides(*row), *args.extra]
        print("+", " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"row {i} failed", file=sys.stderr)
            continue
        for r in json.loads((run / "claims.json").read_text()):
            mark = " | ".join("✓" if v else "-" for v in row)
            lines.append(f"| {mark} | {r['n_way']}-way {r['k_shot']}-shot ({r['head']}) | "
                         f"{r['accuracy']:.2f} ± {r['ci95']:.2f} |")
    table = "\n".join(lines)
    print(table)
    (wd / "table6.md").parent.mkdir(parents=True, exist_ok=True)
    (wd / "table6.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
