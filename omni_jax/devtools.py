"""The package's import graph and its layering: the rooms, their order, cycles and upward arrows.

Used by ``scripts/import_map.py`` (prints the map) and ``tests/test_layering.py`` (0 cycles,
0 upward arrows). Reads the source with :mod:`ast`; imports nothing of ``omni_jax``.

Rooms. A module's room is its first name under ``omni_jax`` (``omni_jax.nn.models`` is in
``nn``, ``omni_jax.omni`` in ``omni``, the package's ``__init__`` in ``omni_jax``), except a
subpackage's ``main`` module: that is an ``omni-jax`` subcommand (``cli.SUBCOMMANDS`` names it,
it imports ``omni_jax.cli``), so it sits in the ``cli`` room.

Arrows. Every ``import`` and ``from ... import`` statement of the package's source counts,
wherever it stands: at the top, inside a function (a lazy import is an arrow too), under
``try``, and under ``if TYPE_CHECKING:`` (a type named in an annotation is still knowledge of
that room; the package has none). ``from a.b import c`` points at the module ``a.b.c`` where
there is one, else at ``a.b``. Not drawn: the parent packages' ``__init__`` that Python runs
before a module (each would make a package and its modules a cycle), and names looked up at run
time (``importlib.import_module`` of a computed name: cli's subcommands, config's ``configs/``
files).

Rules (:data:`LEVELS`, :data:`PURE`): an arrow points down the levels or stays in its room;
rooms on one level know nothing of each other; the pure rooms import nothing below them but
``errors`` (the model, the losses and the Omni-Loss know nothing of files, data or the CLI).
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

PACKAGE = "omni_jax"

# Low to high. A room may import the rooms of lower levels; rooms on one level are siblings.
LEVELS: Tuple[Tuple[str, ...], ...] = (
    ("errors",),
    ("files",),                                     # every read and write of a work or data directory
    ("nn",),                                        # Omni-Layers, backbones, the dense view of an MLP, omnify
    ("omni_jax",),                                  # the package's __init__: __version__, omnify (nn's, lazily)
    ("algorithms",),                                # pure losses over nn's networks
    ("omni",),                                      # the Omni-Loss over any two algorithms, the update step
    ("data",),                                      # sinusoid tasks, image datasets, on-disk formats
    ("glyphs",),                                    # the glyph benchmark's builder (writes a data format)
    ("config",),                                    # loading, overriding, checking configs (omni's weights)
    ("configs",),                                   # the experiments' configs (built with config's helpers)
    ("training",),                                  # the loop, the runner, checkpoints, metrics, results
    ("plotting",),                                  # the one style table of the experiments' figures
    ("sinusoid", "rl", "classification"),           # the experiments
    ("cli", "devtools"),                            # omni-jax and its subcommands; this module
)
# Rooms that compute only: below them they import nothing but these.
PURE: Dict[str, Tuple[str, ...]] = {room: ("omni_jax", "errors") for room in ("nn", "algorithms", "omni")}
LEVEL: Dict[str, int] = {room: i for i, rooms in enumerate(LEVELS) for room in rooms}


class Arrow(NamedTuple):
    """One import: ``source`` imports ``target`` (module names) at ``path:line``."""

    source: str
    target: str
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def package_root() -> Path:
    return Path(__file__).resolve().parent


def modules(root: Optional[Path] = None) -> Dict[str, Path]:
    """Module name -> source file, for every ``.py`` under the package folder ``root``."""
    root = Path(root or package_root())
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = (root.name,) + f.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _resolve(name: str, known: Set[str]) -> Optional[str]:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def arrows(root: Optional[Path] = None) -> List[Arrow]:
    """Every import of one package module by another (see the module doc for what counts)."""
    root = Path(root or package_root())
    mods = modules(root)
    known, out = set(mods), []
    for mod, f in mods.items():
        is_package = f.name == "__init__.py"
        rel = f.relative_to(root.parent).as_posix()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), filename=str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:                       # relative: from the module's package upwards
                    pkg = mod.split(".") if is_package else mod.split(".")[:-1]
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(_resolve(n, known) for n in names):
                if target is not None and target != mod:
                    out.append(Arrow(mod, target, rel, node.lineno))
    return sorted(out, key=lambda a: (a.path, a.line, a.target))


def room(module: str) -> str:
    """The room of a module: its first name under the package, ``cli`` for a subpackage's ``main``."""
    parts = module.split(".")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3 and parts[2] == "main":
        return "cli"
    return parts[1]


def import_map(arrs: Iterable[Arrow]) -> Dict[str, collections.Counter]:
    """Room -> Counter of the rooms its modules import (its own room included), in arrows."""
    out: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for a in arrs:
        out[room(a.source)][room(a.target)] += 1
    return dict(out)


def violation(a: Arrow) -> Optional[str]:
    """Why ``a`` breaks the layering (:data:`LEVELS`, :data:`PURE`), or None."""
    src, dst = room(a.source), room(a.target)
    if src == dst:
        return None
    for r in (src, dst):
        if r not in LEVEL:
            return f"the room {r!r} has no level: place it in omni_jax.devtools.LEVELS"
    if src in PURE and dst not in PURE and dst not in PURE[src]:
        return f"{src} -> {dst}: {src} is pure and knows nothing of {dst}"
    if LEVEL[dst] > LEVEL[src]:
        return f"{src} -> {dst}: upward"
    if LEVEL[dst] == LEVEL[src]:
        return f"{src} -> {dst}: sideways (the two are siblings on one level)"
    return None


def _components(nodes: Sequence[str], edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = counter[0]
                counter[0] += 1
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(edges.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return sorted(out)


class Cycle(NamedTuple):
    """An import cycle between ``kind`` (``modules`` or ``rooms``): ``nodes`` around it (the first
    again at the end) and one arrow for each step."""

    kind: str
    nodes: List[str]
    arrows: List[Arrow]

    def describe(self) -> str:
        return (f"{self.kind}: " + " -> ".join(self.nodes) + " ("
                + "; ".join(a.where() for a in self.arrows) + ")")


def _cycle(comp: List[str], first: Dict[Tuple[str, str], Arrow]) -> List[str]:
    """The shortest cycle through ``comp``'s first node (breadth first), as its nodes."""
    members, start = set(comp), comp[0]
    edges = collections.defaultdict(set)
    for (s, t) in first:
        if s in members and t in members:
            edges[s].add(t)
    prev, todo = {}, collections.deque([start])
    while todo:
        v = todo.popleft()
        for w in sorted(edges[v]):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return path[::-1] + [start]
            if w not in prev:
                prev[w] = v
                todo.append(w)
    raise AssertionError(f"no cycle through {start}")     # a component of 2+ nodes always has one


def cycles(arrs: Sequence[Arrow]) -> List[Cycle]:
    """The import cycles between modules, then between rooms (one per strongly connected component)."""
    out = []
    for kind, key in (("modules", lambda m: m), ("rooms", room)):
        first: Dict[Tuple[str, str], Arrow] = {}
        for a in arrs:
            s, t = key(a.source), key(a.target)
            if s != t:
                first.setdefault((s, t), a)
        edges = collections.defaultdict(set)
        for s, t in first:
            edges[s].add(t)
        for comp in _components(sorted(edges), edges):
            nodes = _cycle(comp, first)
            out.append(Cycle(kind, nodes, [first[(s, t)] for s, t in zip(nodes, nodes[1:])]))
    return out


class Report(NamedTuple):
    """What :func:`check` finds."""

    modules: List[str]
    arrows: List[Arrow]
    cycles: List[Cycle]
    upward: List[Tuple[Arrow, str]]      # arrows that break the layering, and why
    unplaced: List[str]                  # rooms with no level in LEVELS


def check(root: Optional[Path] = None) -> Report:
    """The package's import graph checked against :data:`LEVELS` and :data:`PURE`."""
    mods = sorted(modules(root))
    arrs = arrows(root)
    bad = [(a, why) for a in arrs for why in [violation(a)] if why]
    unplaced = sorted({room(m) for m in mods} - set(LEVEL))
    return Report(mods, arrs, cycles(arrs), bad, unplaced)
