"""Prints omni_jax's import map, its layer order, the import cycles and the upward arrows (issue 25).

    python scripts/import_map.py [--root PATH/TO/omni_jax]

Reads the package's own ``import`` and ``from ... import`` statements (lazy ones inside
functions included; see ``omni_jax.devtools`` for what counts and which room each module is in),
then prints: each room (subpackage or top-level module) and the rooms it imports, with the
number of arrows (one per statement and imported module); the layer order; the cycles between
modules and between rooms (expected 0); the arrows that break the layering (expected 0), each
as ``file:line``; and a final JSON line ``{"modules", "arrows", "cycles", "upward", "unplaced",
"map"}``. Exit status 1 when there is a cycle, an upward arrow or a room with no level.
``tests/test_layering.py`` checks the same.
"""
from __future__ import annotations

import argparse
import json
import sys

from omni_jax import devtools


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="the package folder (default: the installed omni_jax)")
    args = p.parse_args(argv)
    report = devtools.check(args.root)
    imap = devtools.import_map(report.arrows)
    order = [r for rooms in devtools.LEVELS for r in rooms]
    rank = {r: i for i, r in enumerate(order)}
    key = lambda r: (rank.get(r, len(order)), r)

    print(f"import map: {len(report.modules)} modules, {len(report.arrows)} arrows "
          "(room -> rooms it imports, arrows; within itself in brackets)")
    for src in sorted(set(imap) | {devtools.room(m) for m in report.modules}, key=key):
        out = imap.get(src, {})
        others = ", ".join(f"{dst} {n}" for dst, n in sorted(out.items(), key=lambda kv: key(kv[0])) if dst != src)
        print(f"  {src:15s} -> {others or '-'}" + (f"  [{out[src]}]" if out.get(src) else ""))
    print("layer order, low to high (a room imports only lower levels; rooms on one level know nothing "
          "of each other):")
    for i, rooms in enumerate(devtools.LEVELS):
        print(f"  {i:2d} {' | '.join(rooms)}")
    print("pure rooms (below them only " + ", ".join(sorted(set().union(*devtools.PURE.values()))) + "): "
          + ", ".join(devtools.PURE))
    subcommands = [m for m in report.modules if devtools.room(m) == "cli" and m != "omni_jax.cli"]
    print("in the cli room with omni_jax.cli, as omni-jax subcommands: " + ", ".join(subcommands))
    print(f"cycles: {len(report.cycles)}")
    for c in report.cycles:
        print(f"  {c.describe()}")
    print(f"upward arrows: {len(report.upward)}")
    for a, why in report.upward:
        print(f"  {a.where()}: {why}")
    if report.unplaced:
        print(f"rooms with no level: {', '.join(report.unplaced)} (place them in omni_jax.devtools.LEVELS)")
    print(json.dumps({"modules": len(report.modules), "arrows": len(report.arrows), "cycles": len(report.cycles),
                      "upward": len(report.upward), "unplaced": report.unplaced,
                      "map": {s: dict(sorted(imap[s].items(), key=lambda kv: key(kv[0])))
                              for s in sorted(imap, key=key)}}))
    return 1 if report.cycles or report.upward or report.unplaced else 0


if __name__ == "__main__":
    sys.exit(main())
