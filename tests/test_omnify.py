"""omni_jax.omnify: a plain Flax model made an Omni-Net (§4.1), checked against the package's own.

* equivalence: omnify of a plain MLP and of a plain Conv-4 equal OmniMLP and the Omni Conv-4 on
  every flow (same parameter count, same outputs and batch statistics once the parameters are
  mapped; float64, relative error <= 1e-6);
* the joint flow of omnify(M) is M (same variables, same outputs), and with zero branches and
  per-flow copies equal to the joint ones every flow is M;
* a loss on one flow reaches only the joint chunks and that flow's branches, norms and head;
* second-order MAML through an omnified model equals central finite differences;
* nn.remat and nn.scan submodules; what is refused or reported, and how.
"""
import subprocess
import sys
import warnings

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import omni_jax
from omni_jax.algorithms import maml, mse
from omni_jax.errors import OmniJaxError
from omni_jax.nn import FLOWS, OmniDense, OmniMLP, OmnifyWarning, flow_apply, omnify, route
from omni_jax.nn.convnets import count_params, make_backbone
from omni_jax.nn.layers import conv_initializer
from omni_jax.nn.transform import conv_branch_padding

LARGEST = {}   # the largest relative error of each equivalence check (printed with -s)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def assert_close(name, got, want, tol=1e-6):
    errs = [rel_err(g, w) for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want))]
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    LARGEST[name] = max(LARGEST.get(name, 0.0), max(errs))
    print(f"{name}: largest relative error {max(errs):.2e}")
    assert max(errs) <= tol, (name, max(errs))


def f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def merged(copies: dict) -> dict:
    """The package's ``{joint, pre, meta}`` copies as omnify names them: the joint copy's own
    entries, with ``pre`` and ``meta`` inside."""
    out = dict(copies["joint"])
    out.update({b: copies[b] for b in ("pre", "meta") if b in copies})
    return out


# ---------------------------------------------------------------------------- the user's plain models


class PlainMLP(nn.Module):
    widths: tuple = (8, 8)
    out: int = 2

    @nn.compact
    def __call__(self, x):
        for w in self.widths:
            x = jnp.tanh(nn.Dense(w)(x))
        return nn.Dense(self.out, name="head")(x)


class PlainConv4(nn.Module):
    width: int = 8

    @nn.compact
    def __call__(self, x, train: bool = False):
        for _ in range(4):
            x = nn.Conv(self.width, (3, 3), padding="SAME", use_bias=False, kernel_init=conv_initializer("torch"))(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
            x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
        return x.reshape(x.shape[0], -1)


class Mixed(nn.Module):
    """Conv, BatchNorm, Dense, LayerNorm and a head: one of every kind omnify handles."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        x = nn.Dense(6)(x.reshape(x.shape[0], -1))
        x = jnp.tanh(nn.LayerNorm()(x))
        return nn.Dense(3, name="head")(x)


# ---------------------------------------------------------------------------- equivalence with the package's own


@pytest.mark.parametrize("branch_rank,num_plain", [(None, 0), (2, 0), (None, 1)])
def test_omnified_mlp_equals_omni_mlp(branch_rank, num_plain):
    with jax.enable_x64(True):
        ours = OmniMLP(out_features=2, widths=(8, 8), branch_rank=branch_rank, num_plain=num_plain)
        theirs = omnify(PlainMLP(), head="head", branch_rank=branch_rank, num_plain=num_plain)
        x = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float64)
        p = f64(ours.init(jax.random.PRNGKey(0), x))["params"]
        q = theirs.init(jax.random.PRNGKey(0), x)["params"]
        assert count_params(p) == count_params(q)
        mapped = {f"Dense_{i}": merged(p["backbone"][f"layer{i}"]) for i in range(2)}
        mapped["head"] = merged(p["head"])
        assert jax.tree_util.tree_structure(mapped) == jax.tree_util.tree_structure(q)
        for flow in FLOWS:
            assert_close(f"mlp rank={branch_rank} num_plain={num_plain}",
                         theirs.apply({"params": mapped}, x, flow=flow), ours.apply({"params": p}, x, flow))


@pytest.mark.parametrize("num_plain", [0, 2])
def test_omnified_conv4_equals_omni_conv4(num_plain):
    with jax.enable_x64(True):
        ours = make_backbone("conv4", omni=True, width=8, num_plain=num_plain)     # FusedOmniConv + FlowBatchNorm
        theirs = omnify(PlainConv4(), num_plain=num_plain)
        x = jax.random.normal(jax.random.PRNGKey(1), (3, 16, 16, 3), jnp.float64)
        v = f64(ours.init(jax.random.PRNGKey(0), x))
        w = theirs.init(jax.random.PRNGKey(0), x)
        assert count_params(v) == count_params(w)            # parameters and batch statistics
        mapped = {"params": {}, "batch_stats": {}}
        for i in range(4):
            mapped["params"][f"Conv_{i}"] = merged(v["params"][f"block{i}"]["conv"])
            mapped["params"][f"BatchNorm_{i}"] = merged(v["params"][f"block{i}"]["bn"])
            mapped["batch_stats"][f"BatchNorm_{i}"] = merged(v["batch_stats"][f"block{i}"]["bn"])
        assert jax.tree_util.tree_structure(mapped) == jax.tree_util.tree_structure(w)
        cases = [(flow, train) for flow in FLOWS for train in (False, True)]
        outs = jax.jit(lambda v, w: [(ours.apply(v, x, f, train=t, mutable=["batch_stats"]),
                                      theirs.apply(w, x, flow=f, train=t, mutable=["batch_stats"])) for f, t in cases])
        for (y0, s0), (y1, s1) in outs(v, mapped):
            if True:
                assert_close(f"conv4 num_plain={num_plain}", y1, y0)
                stats = {f"BatchNorm_{i}": merged(s0["batch_stats"][f"block{i}"]["bn"]) for i in range(4)}
                assert_close(f"conv4 num_plain={num_plain} batch_stats", s1["batch_stats"], stats)


def test_hand_written_omni_layer_with_route_is_omni_dense():
    """The building block of nn.flows, used by hand, gives OmniDense (same names, same outputs)."""

    class MyOmniDense(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x, flow="joint"):
            return route(self, x, flow, nn.Dense(self.features, name="joint"), lambda b: nn.Dense(self.features, name=b))

    x = jnp.ones((2, 3))
    v = OmniDense(4).init(jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_structure(MyOmniDense(4).init(jax.random.PRNGKey(0), x)) == \
        jax.tree_util.tree_structure(v)
    for flow in FLOWS:
        np.testing.assert_array_equal(MyOmniDense(4).apply(v, x, flow), OmniDense(4).apply(v, x, flow))


# ---------------------------------------------------------------------------- the joint flow is the model


def _split(tree):
    """(the tree without any pre/meta entry, a copy where Omni-Layer branches are zero and per-flow
    copies equal their joint copy)."""
    if not isinstance(tree, dict):
        return tree, tree
    own = {k: _split(v)[0] for k, v in tree.items() if k not in ("pre", "meta")}
    tied = {k: _split(v)[1] for k, v in tree.items() if k not in ("pre", "meta")}
    for b in ("pre", "meta"):
        if b in tree:
            is_layer = "kernel" in tree and not tree[b].keys() - {"kernel", "bias"} and "scale" not in tree
            tied[b] = (jax.tree_util.tree_map(jnp.zeros_like, tree[b]) if is_layer
                       else {k: v for k, v in tied.items() if k not in ("pre", "meta")})
    return own, tied


def test_joint_flow_is_the_model_and_zero_branches_make_every_flow_the_model():
    with jax.enable_x64(True):
        model = Mixed()
        net = omnify(model)          # the head as an Omni-Layer here: a branch, not a copy
        x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 6, 2), jnp.float64)
        vm = model.init(jax.random.PRNGKey(0), x)
        vn = net.init(jax.random.PRNGKey(0), x)
        own, tied = _split(jax.tree_util.tree_map(lambda a: a, dict(vn)))
        # the user's variables, names and values: the transform adds, it never renames or redraws
        jax.tree_util.tree_map(np.testing.assert_array_equal, own, dict(vm))
        vm, tied = f64(vm), f64(tied)
        for train in (False, True):
            want, want_stats = model.apply(vm, x, train=train, mutable=["batch_stats"])
            got, _ = net.apply(f64(vn), x, flow="joint", train=train, mutable=["batch_stats"])
            assert_close("joint flow = M", got, want, tol=0.0)
            for flow in FLOWS:
                got, stats = net.apply(tied, x, flow=flow, train=train, mutable=["batch_stats"])
                assert_close("zero branches: every flow = M", got, want, tol=1e-12)
                bn = stats["batch_stats"]["BatchNorm_0"]
                assert_close("zero branches: every flow = M (batch_stats)",
                             _split(bn)[0] if flow == "joint" else bn[flow], want_stats["batch_stats"]["BatchNorm_0"], tol=1e-12)
        out = net.apply(f64(vn), x, flow="pre")
        assert rel_err(out, net.apply(f64(vn), x, flow="joint")) > 1e-3   # and the flows do differ


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("flow", FLOWS)
def test_a_flow_loss_reaches_only_the_joint_chunks_and_that_flows_parts(flow):
    net = omnify(Mixed(), head="head")
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 6, 2))
    v = net.init(jax.random.PRNGKey(0), x)
    r = jax.random.normal(jax.random.PRNGKey(2), (4, 3))

    def loss(params):
        y, _ = net.apply({**v, "params": params}, x, flow=flow, train=True, mutable=["batch_stats"])
        return jnp.sum(y * r)

    g = jax.tree_util.tree_flatten_with_path(jax.grad(loss)(v["params"]))[0]
    seen = set()
    for path, leaf in g:
        keys = [p.key for p in path]
        owner = next((b for b in ("pre", "meta") if b in keys), "joint")
        copy_of_joint = owner == "joint" and keys[0] in ("BatchNorm_0", "LayerNorm_0", "head")
        nonzero = float(jnp.max(jnp.abs(leaf))) > 0
        if owner == flow or (owner == "joint" and not copy_of_joint) or (flow == "joint" and copy_of_joint):
            assert nonzero, f"{'/'.join(keys)} gets no gradient from the {flow} flow"
            seen.add(keys[0])
        else:
            assert not nonzero, f"{'/'.join(keys)} gets a gradient from the {flow} flow"
    assert seen == {"Conv_0", "BatchNorm_0", "Dense_0", "LayerNorm_0", "head"}


def _episode(dtype):
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    return {"support": {"x": jax.random.uniform(k[0], (2, 5, 1), dtype, -3, 3), "y": jax.random.normal(k[1], (2, 5, 1), dtype)},
            "query": {"x": jax.random.uniform(k[2], (2, 4, 1), dtype, -3, 3), "y": jax.random.normal(k[3], (2, 4, 1), dtype)}}


class SmallNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = jnp.tanh(nn.LayerNorm()(nn.Dense(6)(x)))
        return nn.Dense(1, name="head")(jnp.tanh(nn.Dense(6)(x)))


@pytest.mark.parametrize("flow", ["meta", pytest.param("pre", marks=pytest.mark.slow)])
def test_second_order_maml_through_an_omnified_model_matches_finite_differences(flow):
    with jax.enable_x64(True):
        net = omnify(SmallNet(), head="head")
        params = f64(net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1))))
        episode = _episode(jnp.float64)
        meta = maml(flow_apply(net), mse, inner_lr=0.3, num_steps=1)       # jax.grad inside, vmap over tasks
        f = jax.jit(lambda p: meta(p, episode, flow)[0])
        g = jax.jit(jax.grad(f))(params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat = jax.flatten_util.ravel_pytree(g)[0]
        rng, eps, worst = np.random.default_rng(0), 1e-5, 0.0
        for _ in range(4):
            d = rng.normal(size=flat.shape)
            d /= np.linalg.norm(d)
            fd = (f(unravel(flat + eps * d)) - f(unravel(flat - eps * d))) / (2 * eps)
            np.testing.assert_allclose(float(gflat @ d), float(fd), rtol=1e-6, atol=1e-9)
            worst = max(worst, abs(float(gflat @ d) - float(fd)) / abs(float(fd)))
        LARGEST[f"maml FD {flow}"] = worst
        print(f"second-order MAML ({flow} flow) vs central differences: largest relative error {worst:.2e}")


# ---------------------------------------------------------------------------- lifted submodules


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _=None):
        return jnp.tanh(nn.LayerNorm()(nn.Dense(4)(x))), None


class Stack(nn.Module):
    kind: str

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(4)(x)
        if self.kind == "scan":
            return nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)(name="s")(x, None)[0]
        if self.kind == "jit":
            return nn.jit(Block)(name="b")(x)[0]
        return (nn.remat(Block) if self.kind == "remat" else Block)(name="b")(x)[0]


def test_remat_and_scan_submodules():
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    plain, remat = omnify(Stack("plain")), omnify(Stack("remat"))
    v = plain.init(jax.random.PRNGKey(0), x)
    vr = remat.init(jax.random.PRNGKey(0), x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, vr, v)
    assert set(v["params"]["b"]["LayerNorm_0"]) == {"scale", "bias", "pre", "meta"}
    for flow in FLOWS:
        np.testing.assert_allclose(remat.apply(v, x, flow=flow), plain.apply(v, x, flow=flow), rtol=1e-6)
        gr = jax.grad(lambda p: jnp.sum(remat.apply(p, x, flow=flow) ** 2))(v)
        gp = jax.grad(lambda p: jnp.sum(plain.apply(p, x, flow=flow) ** 2))(v)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), gr, gp)

    scan = omnify(Stack("scan"))
    vs = scan.init(jax.random.PRNGKey(0), x)
    assert vs["params"]["s"]["Dense_0"]["pre"]["kernel"].shape == (3, 4, 4)       # every step's branches
    first, block = omnify(nn.Dense(4)), omnify(Block())
    for flow in FLOWS:
        h = first.apply({"params": vs["params"]["Dense_0"]}, x, flow=flow)
        for i in range(3):
            h = block.apply({"params": jax.tree_util.tree_map(lambda a: a[i], vs["params"]["s"])}, h, flow=flow)[0]
        np.testing.assert_allclose(jax.jit(lambda v, f=flow: scan.apply(v, x, flow=f))(vs), h, rtol=1e-5, atol=1e-6)


def test_nn_jit_submodule_is_refused():
    with pytest.raises(OmniJaxError, match=r"'b' .*nn\.jit"):
        omnify(Stack("jit")).init(jax.random.PRNGKey(0), jnp.ones((2, 5)))


# ---------------------------------------------------------------------------- convolution branches


@pytest.mark.parametrize("padding,strides,dilation", [
    ("VALID", 1, 1), (((2, 1), (0, 2)), 1, 1), ("SAME", 1, 2), ("CIRCULAR", 1, 1), (((1, 1), (1, 1)), 2, 1)])
def test_a_conv_branch_is_the_centre_tap_of_the_layer(padding, strides, dilation):
    """f_joint + f_branch = the layer with the branch added to its kernel's centre (the fused
    identity of FusedOmniConv), for any padding: same strides and dilation, outputs aligned."""
    conv = nn.Conv(5, (3, 3), strides=strides, padding=padding, kernel_dilation=dilation, use_bias=False)
    net = omnify(conv)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 8, 3))
    v = net.init(jax.random.PRNGKey(0), x)
    p = v["params"]
    fused = {"params": {"kernel": p["kernel"].at[1, 1].add(p["meta"]["kernel"][0, 0])}}
    np.testing.assert_allclose(net.apply(v, x, flow="meta"), conv.apply(fused, x), rtol=1e-5, atol=1e-5)
    assert conv_branch_padding("SAME", (3, 3), 1, (1, 1)) == "SAME"


class Norms(nn.Module):
    @nn.compact
    def __call__(self, x):
        shared = nn.Dense(4, name="tied")                       # one layer called twice: one set of branches
        x = shared(nn.PReLU()(nn.GroupNorm(num_groups=2)(shared(x))))
        x = nn.InstanceNorm()(nn.RMSNorm()(x))
        return nn.DenseGeneral((2, 3), name="out")(x)


def test_every_norm_kind_gets_a_copy_per_flow_and_a_tied_layer_one_set_of_branches():
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    net = omnify(Norms())
    rep = net.report(x)
    assert rep.per_flow == ("GroupNorm_0 (GroupNorm)", "PReLU_0 (PReLU)", "RMSNorm_0 (RMSNorm)",
                            "InstanceNorm_0 (InstanceNorm)") and not rep.shared
    assert rep.omni_layers == ("tied (Dense, full-width branches)", "out (DenseGeneral, full-width branches)")
    v = net.init(jax.random.PRNGKey(0), x)
    p = v["params"]
    assert set(p["tied"]) == {"kernel", "bias", "pre", "meta"} and p["out"]["pre"]["kernel"].shape == (4, 2, 3)
    for name in ("GroupNorm_0", "RMSNorm_0", "InstanceNorm_0", "PReLU_0"):
        assert {"pre", "meta"} <= set(p[name])

    def by_hand(flow):      # Eq. 3 with each flow's copies, written out
        dense = lambda q, h: h @ q["kernel"] + q["bias"]
        omni = lambda q, h: dense(q, h) + (0 if flow == "joint" else dense(q[flow], h))
        copy = lambda name: p[name] if flow == "joint" else p[name][flow]
        h = omni(p["tied"], x)
        h = nn.GroupNorm(num_groups=2).apply({"params": copy("GroupNorm_0")}, h)
        h = omni(p["tied"], nn.PReLU().apply({"params": copy("PReLU_0")}, h))
        h = nn.InstanceNorm().apply({"params": copy("InstanceNorm_0")}, nn.RMSNorm().apply({"params": copy("RMSNorm_0")}, h))
        q = p["out"]
        out = jnp.einsum("bi,ijk->bjk", h, q["kernel"]) + q["bias"]
        return out if flow == "joint" else out + jnp.einsum("bi,ijk->bjk", h, q[flow]["kernel"]) + q[flow]["bias"]

    for flow in FLOWS:
        np.testing.assert_allclose(net.apply(v, x, flow=flow), by_hand(flow), rtol=1e-5, atol=1e-6)
    with pytest.raises(OmniJaxError, match=r"low-rank branches .* 'out' is an nn.DenseGeneral"):
        omnify(Norms(), branch_rank=2).init(jax.random.PRNGKey(0), x)


# ---------------------------------------------------------------------------- what is refused or reported


class WithRawParam(nn.Module):
    @nn.compact
    def __call__(self, x):
        w = self.param("w", nn.initializers.normal(), (x.shape[-1], 3))     # a raw matmul
        e = nn.Embed(4, 3, name="embed")(jnp.zeros(x.shape[:1], jnp.int32))
        return nn.Dense(3)(x @ w + e)


def test_shared_variables_are_reported_once_or_refused():
    x = jnp.ones((2, 4))
    with pytest.warns(OmnifyWarning, match=r"\(the model\) \(WithRawParam: w\); embed \(Embed: embedding\)"):
        v = omnify(WithRawParam()).init(jax.random.PRNGKey(0), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        omnify(WithRawParam()).apply(v, x, flow="pre")                          # reported at init, not per call
        omnify(WithRawParam(), plain=["w", "embed"]).init(jax.random.PRNGKey(0), x)   # meant: no warning
    with pytest.raises(OmniJaxError, match=r"shared by every flow: \(the model\) \(WithRawParam: w\); embed .*plain=\['w', 'embed'\]"):
        omnify(WithRawParam(), shared="error").init(jax.random.PRNGKey(0), x)
    rep = omnify(WithRawParam()).report(x)
    assert rep.shared_paths == ("w", "embed") and rep.omni_layers == ("Dense_0 (Dense, full-width branches)",)


def test_report_names_what_each_submodule_became():
    rep = omnify(PlainConv4(), num_plain=2).report(jnp.ones((1, 16, 16, 3)))
    assert rep.plain == ("Conv_0 (Conv)", "BatchNorm_0 (BatchNorm)", "Conv_1 (Conv)", "BatchNorm_1 (BatchNorm)")
    assert rep.omni_layers == ("Conv_2 (Conv, 3x3 -> 1x1 branches)", "Conv_3 (Conv, 3x3 -> 1x1 branches)")
    assert rep.per_flow == ("BatchNorm_2 (BatchNorm)", "BatchNorm_3 (BatchNorm)") and not rep.shared
    assert "Omni-Layers (2):" in str(rep)


class HasOmniDense(nn.Module):
    @nn.compact
    def __call__(self, x):
        return OmniDense(3, name="omni")(nn.Dense(3)(x))


class MaskedConv(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Conv(2, (3,), mask=jnp.ones((3, 1, 2)), name="masked")(x)


@pytest.mark.parametrize("build,call,match", [
    (lambda: omnify(HasOmniDense()), (jnp.ones((1, 2)),), r"'omni' \(OmniDense\) takes a flow already"),
    (lambda: omnify(PlainMLP(), head="hed"), (jnp.ones((1, 2)),), r"head='hed' names no submodule.*Dense_0, Dense_1, head"),
    (lambda: omnify(PlainMLP(), plain="Dense_7"), (jnp.ones((1, 2)),), r"plain='Dense_7' names no submodule"),
    (lambda: omnify(PlainMLP(), num_plain=4), (jnp.ones((1, 2)),), r"num_plain=4, but the model calls 3"),
    (lambda: omnify(MaskedConv()), (jnp.ones((1, 5, 1)),), r"'masked' is a masked convolution"),
    (lambda: omnify(PlainMLP, head="head"), None, r"omnify\(PlainMLP\(\.\.\.\)\)"),
    (lambda: omnify(omnify(PlainMLP())), None, r"omnified already"),
    (lambda: omnify(PlainMLP(), head="head", plain="head"), None, r"'head' and 'head' overlap"),
    (lambda: omnify(PlainMLP(), branch_rank=0), None, r"branch_rank must be"),
])
def test_refusals_name_the_submodule(build, call, match):
    with pytest.raises(OmniJaxError, match=match):
        build().init(jax.random.PRNGKey(0), *call)


def test_unknown_flow_is_an_error():
    net = omnify(PlainMLP())
    v = net.init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="flow must be one of"):
        net.apply(v, jnp.ones((1, 2)), flow="both")


def test_public_name_and_a_cheap_import():
    assert omni_jax.omnify is omnify
    code = "import sys, omni_jax; assert 'jax' not in sys.modules and 'flax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- Omni-Training end to end


@pytest.mark.slow
def test_sinusoid_omni_training_of_an_omnified_mlp_follows_omni_mlp():
    """Two Omni-Training steps (Omni-Loss, MAML on the generic path, the EMA teacher, Adam) of
    omnify(plain MLP) from OmniMLP's mapped parameters give OmniMLP's parameters, mapped."""
    from omni_jax import config as config_lib
    from omni_jax.sinusoid import train as tr
    cfg = config_lib.apply_overrides(config_lib.load_config("sinusoid", quick=True), [
        "train.maml_impl=generic", "train.meta_batch=8", "train.pre_batch=32", "train.chunk_size=2",
        "train.num_steps=2", "data.num_train_tasks=50", "model.widths=(16,16)"])
    data = tr.training_set(cfg)
    ours = tr.setup(cfg, "omni", data)
    theirs = tr.setup(cfg, "omni", data, model=omnify(PlainMLP((16, 16), out=1), head="head"))

    def mapped(params):
        p = params["params"]
        out = {f"Dense_{i}": merged(p["backbone"][f"layer{i}"]) for i in range(2)}
        return {"params": {**out, "head": merged(p["head"])}}

    start = mapped(ours.state.params)
    optimizer = tr.make_optimizer(cfg, config_lib.loss_weights(cfg.omni, "omni"))
    state = ours.state.replace(params=start, opt_state=optimizer.init(start))
    s0, m0 = ours.chunk(ours.state, data)
    s1, m1 = theirs.chunk(state, data)
    np.testing.assert_allclose(m1["loss/total"], m0["loss/total"], rtol=1e-5)
    assert rel_err(jax.flatten_util.ravel_pytree(mapped(s0.params))[0], jax.flatten_util.ravel_pytree(start)[0]) > 1e-4
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s1.params,
                           mapped(s0.params))
