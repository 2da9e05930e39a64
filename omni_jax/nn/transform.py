"""``omnify``: Omni-Training for any Flax model, the Omni-Net as a transform (paper §4.1).

"This architecture can be transformed from the layers in existing backbones by copying their
original layers as the main chunk layer f_joint and add two similar branch layers f_pre and
f_meta ... We let each data flow have its specific copy of these additional layers." (§4.1)

    net = omni_jax.omnify(MyNet(...))            # MyNet: any flax.linen.Module, unchanged
    variables = net.init(key, x)                 # the parameters of all three flows at once
    y = net.apply(variables, x, flow="pre")      # Eq. 3 through every layer

How: :class:`Omnified` shares its scope with the user's module (``nn.share_scope``), so the
variable tree keeps the user's names, and calls it under ``nn.intercept_methods``. The
interceptor sees every layer call, finds the layer by class and by its path, and replaces it:

* ``nn.Dense``, ``nn.DenseGeneral``, ``nn.Conv`` become Omni-Layers (:func:`omni_jax.nn.route`):
  the user's layer, with its own parameters and initializers, is ``f_joint``; the branches
  ``f_pre`` and ``f_meta`` are submodules ``pre`` and ``meta`` inside the layer's scope
  (``Dense_0/{kernel, bias, pre/{kernel, bias}, meta/{kernel, bias}}``). A dense layer's branch
  is a copy of it (full width) or, with ``branch_rank=r``, ``Dense(r, no bias) -> Dense``
  (``pre/{down, up}``); a convolution's branch is a ``1x1`` convolution (``branch_kernel_size``)
  with the layer's strides, dilations, groups and padding (``SAME``, ``CIRCULAR``, ``REFLECT``
  and ``CAUSAL`` as they are; ``VALID`` and explicit padding moved so the branch's tap is the
  centre of the layer's window and the outputs have one shape).
* ``nn.BatchNorm``, ``nn.LayerNorm``, ``nn.GroupNorm``, ``nn.RMSNorm``, ``nn.InstanceNorm`` and
  ``nn.PReLU`` get one copy per flow (:func:`omni_jax.nn.each_flow`): the joint flow's is the
  user's (its names, its ``batch_stats``), ``pre`` and ``meta`` are copies inside its scope,
  each with its own parameters and statistics.
* ``head=[paths]``: those submodules become the Omni-Head, one copy of the whole submodule per
  flow (the user's is the joint head; ``pre``/``meta`` copies inside its scope), no branches.
* ``plain=[paths]`` and ``num_plain=n`` keep layers plain, shared by every flow (Figure 12):
  a path keeps its whole subtree plain; ``num_plain`` keeps the first ``n`` dense or
  convolutional layers in call order plain, with the norms called before the next one.
* Anything else that holds variables (a raw ``self.param``, an ``nn.Embed``, an unknown layer
  type) is shared by every flow: reported once per ``init`` by an :class:`OmnifyWarning` that
  names each path (``shared="error"`` refuses it with an :class:`~omni_jax.errors.OmniJaxError`
  instead; listing the path in ``plain`` says it is meant and silences the warning).
* Refused, with an error naming the submodule's path: a submodule that already takes a
  ``flow`` (the package's Omni-Layers: apply them directly), ``nn.jit`` submodules (flax's
  trace cache does not see the flow and would replay another flow's computation), masked
  convolutions, ``nn.SpectralNorm``/``nn.WeightNorm`` (they rewrite the wrapped layer's kernel),
  low-rank branches of ``nn.DenseGeneral``, an ``omnify`` inside an ``omnify``, and a branch name
  (``pre``/``meta``) the user's layer already uses.

The flow is static (a Python string, checked by :func:`omni_jax.nn.check_flow`); the result is
a plain Flax module, so ``jax.jit``, ``jax.vmap`` over tasks, ``jax.grad`` through MAML's inner
loop, ``nn.remat`` and ``nn.scan`` submodules all work on it (tests/test_omnify.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import threading
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import flax.linen as nn
from flax.core import lift
from flax.linen.linear import canonicalize_padding

from omni_jax.errors import OmniJaxError
from omni_jax.nn.flows import BRANCHES, FLOWS, check_flow, each_flow, route

OMNI_LAYERS = (nn.Dense, nn.DenseGeneral, nn.Conv)                        # f_joint + f_pre / f_meta
PER_FLOW = (nn.BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.InstanceNorm, nn.PReLU)  # a copy per flow
REFUSED = (nn.SpectralNorm, nn.WeightNorm)
SHARED_CHOICES = ("warn", "error")


class OmnifyWarning(UserWarning):
    """Variables of an omnified model that are shared by every flow (see :func:`omnify`)."""


class OmnifyReport(NamedTuple):
    """What :func:`omnify` made of each submodule (``Omnified.report``), paths relative to the model."""

    omni_layers: Tuple[str, ...]   # "path (Class, branch shape)": f_joint + f_pre / f_meta
    per_flow: Tuple[str, ...]      # "path (Class)": one copy per flow
    heads: Tuple[str, ...]         # the Omni-Head: one copy of the submodule per flow
    plain: Tuple[str, ...]         # kept plain: shared by every flow, as asked
    shared: Tuple[str, ...]        # "path (Class: leaves)": shared by every flow, not asked
    shared_paths: Tuple[str, ...] = ()   # the same as paths, what plain=[...] takes to say it is meant

    def __str__(self) -> str:
        rows = [("Omni-Layers", self.omni_layers), ("one copy per flow", self.per_flow),
                ("Omni-Head", self.heads), ("plain (asked)", self.plain),
                ("shared by every flow (not asked)", self.shared)]
        return "\n".join(f"{title} ({len(items)}):" + "".join(f"\n  {i}" for i in items) for title, items in rows)


def _key(path: Sequence[str]) -> str:
    return "/".join(path)


def _under(key: str, prefix: str) -> bool:
    """``key`` is ``prefix`` or inside it (by whole path components)."""
    return prefix == "" or key == prefix or key.startswith(prefix + "/")


@functools.lru_cache(maxsize=None)
def _is_lifted_jit(cls: type) -> bool:
    """Whether a method of ``cls`` is flax's ``nn.jit`` (class or decorator form): its wrapper
    keeps a trace cache keyed on the module's fields, which the flow is not one of."""
    for klass in cls.__mro__:
        for fn in vars(klass).values():
            seen = 0
            while callable(fn) and seen < 8:
                code = getattr(fn, "__code__", None)
                if code is not None and "trafo_fn" in code.co_freevars and "transform" in code.co_freevars:
                    cell = fn.__closure__[code.co_freevars.index("transform")]
                    try:
                        if cell.cell_contents is lift.jit:
                            return True
                    except ValueError:   # an empty cell
                        pass
                fn, seen = getattr(fn, "__wrapped__", None), seen + 1
    return False


@functools.lru_cache(maxsize=None)
def _takes_flow(cls: type) -> bool:
    try:
        return "flow" in inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        return False


class _LowRankBranch(nn.Module):
    """``Dense(rank, no bias) -> Dense(features)``: a dense layer's low-rank branch (``pre/{down, up}``,
    as :class:`omni_jax.nn.layers.LowRankDense`), with the layer's dtypes and initializers."""

    features: int
    rank: int
    use_bias: bool
    kernel_init: Callable
    bias_init: Callable
    dtype: Any = None
    param_dtype: Any = None
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, precision=self.precision, kernel_init=self.kernel_init)
        h = nn.Dense(self.rank, use_bias=False, name="down", **kw)(x)
        return nn.Dense(self.features, use_bias=self.use_bias, bias_init=self.bias_init, name="up", **kw)(h)


def _as_tuple(v, n: int) -> Tuple[int, ...]:
    if v is None:
        v = 1
    return (v,) * n if isinstance(v, int) else tuple(v)


def conv_branch_padding(padding, kernel_size: Sequence[int], kernel_dilation, branch_size: Sequence[int]):
    """The padding of a convolution's branch (kernel ``branch_size``, the layer's dilation) that
    gives the layer's output shape with the branch's tap at the centre of the layer's window.

    ``SAME``, ``CIRCULAR``, ``REFLECT`` and ``CAUSAL`` keep the output shape for any kernel and are
    kept as they are (``SAME`` as the package's :class:`~omni_jax.nn.OmniConv` does); ``VALID`` and
    explicit ``(low, high)`` pads are moved by the difference of the two kernels' centres
    (negative: the branch crops)."""
    nd = len(kernel_size)
    pad = canonicalize_padding(padding, nd)
    if isinstance(pad, str):
        if pad.upper() != "VALID":
            return pad
        pad = [(0, 0)] * nd
    out = []
    for (lo, hi), k, d, b in zip(pad, kernel_size, _as_tuple(kernel_dilation, nd), branch_size):
        span, bspan = d * (k - 1) + 1, d * (b - 1) + 1
        c, cb = (span - 1) // 2, (bspan - 1) // 2
        out.append((lo - c + cb, hi - (span - 1 - c) + (bspan - 1 - cb)))
    return tuple(out)


_REPORTS = threading.local()   # a stack of lists that Omnified.report collects the init's report in


@contextlib.contextmanager
def _collect_reports():
    stack = _REPORTS.__dict__.setdefault("stack", [])
    stack.append([])
    try:
        yield stack[-1]
    finally:
        stack.pop()


@dataclasses.dataclass
class _Trace:
    """One call of an :class:`Omnified` model: what the interceptor decided for each submodule."""

    model: "Omnified"
    flow: str
    root: Tuple[str, ...]
    quiet: int = 0                                                # > 0: inside a branch, copy, head or plain subtree
    kinds: Dict[str, str] = dataclasses.field(default_factory=dict)      # path -> omni | per_flow | head | plain | other
    classes: Dict[str, str] = dataclasses.field(default_factory=dict)    # path -> class name
    details: Dict[str, str] = dataclasses.field(default_factory=dict)    # path -> branch shape
    layers: List[str] = dataclasses.field(default_factory=list)          # omni-able layers in call order
    checked: set = dataclasses.field(default_factory=set)

    @contextlib.contextmanager
    def quietly(self):
        self.quiet += 1
        try:
            yield
        finally:
            self.quiet -= 1

    # ------------------------------------------------------------------ the interceptor

    def __call__(self, next_fun, args, kwargs, context):
        m = context.module
        if self.quiet:
            return next_fun(*args, **kwargs)
        cls = type(m)
        if _is_lifted_jit(cls):   # (flax calls it before its scope is the submodule's: name it by its parent)
            where = _key(getattr(getattr(m.parent, "scope", None), "path", ())[len(self.root):] + (m.name or "?",))
            raise OmniJaxError(f"omnify: the submodule {where!r} ({cls.__name__}) is wrapped in nn.jit, whose trace "
                               "cache does not see the flow; remove nn.jit there and jit the whole apply instead")
        path = tuple(m.scope.path) if m.scope is not None else None
        if path is None or path[:len(self.root)] != self.root:
            return next_fun(*args, **kwargs)      # not a submodule of the omnified model
        key = _key(path[len(self.root):])
        self.classes.setdefault(key, cls.__name__)
        if isinstance(m, Omnified):
            raise OmniJaxError(f"omnify: the submodule {key!r} is omnified already; omnify the outer model once")
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        kind = self.kind(m, key)
        if kind == "other":
            if _takes_flow(cls):
                raise OmniJaxError(f"omnify: the submodule {key!r} ({cls.__name__}) takes a flow already (an "
                                   "Omni-Layer); omnify makes plain Flax layers tri-flow: apply Omni modules directly, "
                                   "or build the model from plain layers")
            return next_fun(*args, **kwargs)
        if kind == "plain":
            with self.quietly():
                return next_fun(*args, **kwargs)
        if kind in ("per_flow", "head"):
            return self.copies(m, key, next_fun, args, kwargs)
        return self.omni_layer(m, key, next_fun, args, kwargs)

    def kind(self, m, key: str) -> str:
        if key in self.kinds:
            return self.kinds[key]
        opts = self.model
        if key in opts.head:
            kind = "head"
        elif any(_under(key, p) for p in opts.plain):
            kind = "plain"
        elif isinstance(m, REFUSED):
            raise OmniJaxError(f"omnify: the submodule {key!r} is an nn.{type(m).__name__}, which rewrites the kernel "
                               "of the layer it wraps; keep it plain (plain=[...]) or remove it")
        elif isinstance(m, OMNI_LAYERS):
            self.layers.append(key)
            kind = "plain" if len(self.layers) <= opts.num_plain else "omni"
        elif isinstance(m, PER_FLOW):
            kind = "plain" if 0 < opts.num_plain and len(self.layers) <= opts.num_plain else "per_flow"
        else:
            kind = "other"
        self.kinds[key] = kind
        return kind

    def child(self, m, key: str, name: str, template):
        """``template`` bound to the child scope ``name`` of the layer ``m`` (a branch or a flow's copy)."""
        if m.is_initializing() and (key, name) not in self.checked:
            self.checked.add((key, name))
            if name in m.scope.reservations:
                raise OmniJaxError(f"omnify: the submodule {key!r} ({type(m).__name__}) already has a variable or "
                                   f"submodule named {name!r}, the name of its {name}-flow copy; rename it")
        return template.clone(parent=m.scope.push(name, reuse=True), name=None)

    def copies(self, m, key, next_fun, args, kwargs):
        """One copy of ``m`` per flow (a norm, a head): the user's for the joint flow."""

        def copy(name):
            if name == FLOWS[0]:
                return next_fun(*args, **kwargs)
            return self.child(m, key, name, m)(*args, **kwargs)

        with self.quietly():
            return each_flow(m, self.flow, copy)

    def omni_layer(self, m, key, next_fun, args, kwargs):
        """Eq. 3: the user's layer as f_joint, plus the flow's branch."""
        x = args[0] if args else kwargs["inputs"]
        template = self.branch_template(m, key)
        shape = {}

        def joint(_):
            y = next_fun(*args, **kwargs)
            shape["y"] = y.shape
            return y

        def make_branch(b):
            branch = self.child(m, key, b, template)

            def apply(x):
                out = branch(x)
                if out.shape != shape["y"]:
                    raise OmniJaxError(f"omnify: the {b} branch of {key!r} ({type(m).__name__}) gives shape "
                                       f"{out.shape}, the layer {shape['y']}; keep the layer plain (plain=[{key!r}])")
                return out

            return apply

        with self.quietly():
            return route(m, x, self.flow, joint, make_branch)

    def branch_template(self, m, key: str):
        opts = self.model
        init = opts.branch_init or m.kernel_init
        if isinstance(m, nn.Conv):
            if m.mask is not None:
                raise OmniJaxError(f"omnify: the submodule {key!r} is a masked convolution, whose mask a 1x1 branch "
                                   "cannot follow; keep it plain (plain=[...])")
            ks = (m.kernel_size,) if isinstance(m.kernel_size, int) else tuple(m.kernel_size)
            bs = tuple(min(opts.branch_kernel_size, k) for k in ks)
            self.details[key] = f"{'x'.join(map(str, ks))} -> {'x'.join(map(str, bs))} branches"
            return m.clone(parent=None, name=None, kernel_size=bs, mask=None, kernel_init=init,
                           padding=conv_branch_padding(m.padding, ks, m.kernel_dilation, bs))
        if opts.branch_rank is not None:
            if not isinstance(m, nn.Dense):
                raise OmniJaxError(f"omnify: low-rank branches (branch_rank={opts.branch_rank}) are for nn.Dense; "
                                   f"{key!r} is an nn.{type(m).__name__}: keep it plain or use full-width branches")
            self.details[key] = f"rank-{opts.branch_rank} branches"
            return _LowRankBranch(m.features, opts.branch_rank, m.use_bias, init, m.bias_init, m.dtype, m.param_dtype,
                                  m.precision, parent=None)
        self.details[key] = "full-width branches"
        return m.clone(parent=None, name=None, kernel_init=init)

    # ------------------------------------------------------------------ after init

    def report(self, variables) -> OmnifyReport:
        """Which variables belong to what; checks that every ``head``/``plain`` path names something."""
        opts = self.model
        leaves = []

        def walk(tree, path):
            if isinstance(tree, dict) or hasattr(tree, "items"):
                for k, v in tree.items():
                    walk(v, path + (str(k),))
            else:
                leaves.append(_key(path))

        for col, tree in variables.items():
            if col != "intermediates":
                walk(tree, ())
        owned = [k for k, kind in self.kinds.items() if kind != "other"]
        for p in opts.head:
            if self.kinds.get(p) != "head":
                raise OmniJaxError(f"omnify: head={p!r} names no submodule called by the model; its submodules: "
                                   f"{', '.join(sorted(k for k in self.classes if k)) or 'none'}")
        for p in opts.plain:
            if not any(_under(k, p) for k in list(self.classes) + leaves):
                raise OmniJaxError(f"omnify: plain={p!r} names no submodule or variable of the model; its "
                                   f"submodules: {', '.join(sorted(k for k in self.classes if k)) or 'none'}")
        if opts.num_plain > len(self.layers):
            raise OmniJaxError(f"omnify: num_plain={opts.num_plain}, but the model calls {len(self.layers)} dense or "
                               "convolutional layers")
        shared: Dict[str, List[str]] = {}
        for leaf in leaves:
            if any(_under(leaf, k) for k in owned) or any(_under(leaf, p) for p in opts.plain):
                continue
            module = max((k for k in self.classes if _under(leaf, k)), key=len, default="")
            shared.setdefault(module, []).append(leaf[len(module) + 1:] if module else leaf)

        def named(kind, extra=lambda k: ""):
            return tuple(f"{k or '(the model)'} ({self.classes.get(k, '?')}{extra(k)})"
                         for k, v in self.kinds.items() if v == kind)

        return OmnifyReport(
            omni_layers=named("omni", lambda k: f", {self.details.get(k, '')}"),
            per_flow=named("per_flow"), heads=named("head"), plain=named("plain"),
            shared=tuple(f"{k or '(the model)'} ({self.classes.get(k, '?')}: {', '.join(sorted(set(v)))})"
                         for k, v in sorted(shared.items())),
            shared_paths=tuple(p for k, v in sorted(shared.items()) for p in ([k] if k else sorted(set(v)))))


class Omnified(nn.Module):
    """A Flax model made an Omni-Net by :func:`omnify`; call it as the model, with ``flow=``.

    ``Omnified(...)(*args, flow="joint", **kwargs)`` calls ``module(*args, **kwargs)`` with every
    layer routed for ``flow`` (one of ``"joint"``, ``"pre"``, ``"meta"``). Its variables are the
    model's, under the model's own names, plus each Omni-Layer's ``pre``/``meta`` branches and each
    per-flow layer's and head's ``pre``/``meta`` copies. Build it with :func:`omnify`.
    """

    module: nn.Module
    head: Tuple[str, ...] = ()
    plain: Tuple[str, ...] = ()
    num_plain: int = 0
    branch_rank: Optional[int] = None
    branch_kernel_size: int = 1
    branch_init: Optional[Callable] = None
    shared: str = "warn"

    def setup(self):
        nn.share_scope(self, self.module)

    def __call__(self, *args, flow: str = "joint", **kwargs):
        check_flow(flow)
        trace = _Trace(self, flow, tuple(self.scope.path))
        with nn.intercept_methods(trace):
            out = self.module(*args, **kwargs)
        if self.is_initializing():
            self._check(trace)
        return out

    def _check(self, trace: _Trace) -> None:
        rep = trace.report(self.variables)
        stack = getattr(_REPORTS, "stack", None)
        if stack:
            stack[-1].append(rep)
        if not rep.shared:
            return
        what = "; ".join(rep.shared)
        name = type(self.module).__name__
        paths = ", ".join(map(repr, rep.shared_paths))
        if self.shared == "error":
            raise OmniJaxError(f"omnify({name}): these variables have no tri-flow form and would be shared by every "
                               f"flow: {what}. Keep them plain on purpose (plain=[{paths}]) or pass shared='warn'")
        warnings.warn(f"omnify({name}): shared by every flow (no branch, no per-flow copy): {what}. "
                      f"plain=[{paths}] keeps them shared without this warning; shared='error' refuses them",
                      OmnifyWarning, stacklevel=2)

    @nn.nowrap
    def report(self, *args, **kwargs) -> OmnifyReport:
        """What the transform makes of each submodule when the model is called with these
        arguments (an abstract ``init``: nothing is computed)."""
        import jax
        with _collect_reports() as found, warnings.catch_warnings():
            warnings.simplefilter("ignore", OmnifyWarning)
            jax.eval_shape(lambda: self.init(jax.random.PRNGKey(0), *args, **kwargs))
        return found[-1]


def _paths(value: Union[str, Sequence[str]], name: str) -> Tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    out = []
    for p in items:
        if not isinstance(p, str) or not p.strip("/"):
            raise OmniJaxError(f"omnify: {name} takes submodule paths such as 'head' or 'encoder/Dense_0', got {p!r}")
        out.append(p.strip("/"))
    return tuple(out)


def omnify(module: nn.Module, *, head: Union[str, Sequence[str]] = (), plain: Union[str, Sequence[str]] = (),
           num_plain: int = 0, branch_rank: Optional[int] = None, branch_kernel_size: int = 1,
           branch_init: Optional[Callable] = None, shared: str = "warn") -> Omnified:
    """The Omni-Net of a Flax model (§4.1): every dense and convolutional layer an Omni-Layer,
    every norm one copy per flow; see the module doc.

    Args:
      module: any ``flax.linen.Module`` instance, unchanged.
      head: paths of submodules (``"head"``, ``"decoder/out"``) that become the Omni-Head: one copy
        per flow, no branches.
      plain: paths of submodules (or variables) kept plain, shared by every flow.
      num_plain: keep the first ``n`` dense/convolutional layers (in call order) plain, and the
        norms called before the next one (Figure 12's "first n blocks unchanged").
      branch_rank: ``None``: full-width dense branches (a copy of the layer); an int: low-rank
        ``Dense(rank) -> Dense(features)`` branches.
      branch_kernel_size: a convolution's branches are ``k x k`` with this ``k`` (1: the paper's
        ``1x1``), never larger than the layer's kernel.
      branch_init: the branches' kernel initializer; ``None``: each layer's own ``kernel_init``.
      shared: what to do with variables that have no tri-flow form (a raw ``self.param``, an
        unknown layer type): ``"warn"`` shares them by every flow and reports them once per init;
        ``"error"`` refuses the model, naming them.

    Returns:
      An :class:`Omnified` module: ``net.init(key, *args, **kwargs)`` creates every flow's
      parameters; ``net.apply(variables, *args, flow=..., **kwargs)`` runs one flow.
    """
    if isinstance(module, type):
        raise OmniJaxError(f"omnify takes a module instance, e.g. omnify({module.__name__}(...)), not the class")
    if not isinstance(module, nn.Module):
        raise OmniJaxError(f"omnify takes a flax.linen.Module, got {type(module).__name__}")
    if isinstance(module, Omnified):
        raise OmniJaxError("omnify: this model is omnified already")
    if not isinstance(num_plain, int) or num_plain < 0:
        raise OmniJaxError(f"omnify: num_plain must be an int >= 0, got {num_plain!r}")
    if branch_rank is not None and (not isinstance(branch_rank, int) or branch_rank < 1):
        raise OmniJaxError(f"omnify: branch_rank must be None or an int >= 1, got {branch_rank!r}")
    if not isinstance(branch_kernel_size, int) or branch_kernel_size < 1:
        raise OmniJaxError(f"omnify: branch_kernel_size must be an int >= 1, got {branch_kernel_size!r}")
    if shared not in SHARED_CHOICES:
        raise OmniJaxError(f"omnify: shared must be one of {SHARED_CHOICES}, got {shared!r}")
    heads, plains = _paths(head, "head"), _paths(plain, "plain")
    for i, h in enumerate(heads):
        for j, p in enumerate(heads + plains):
            if i != j and (_under(h, p) or _under(p, h)):
                raise OmniJaxError(f"omnify: the paths {h!r} and {p!r} overlap; a head is one submodule, "
                                   "neither plain nor inside another head")
    return Omnified(module, heads, plains, num_plain, branch_rank, branch_kernel_size, branch_init, shared)


__all__ = ["BRANCHES", "OMNI_LAYERS", "PER_FLOW", "OmnifyReport", "OmnifyWarning", "Omnified", "conv_branch_padding",
           "omnify"]
