"""Few-shot learning with graph neural networks (Garcia & Bruna 2018): ``GNN_nl`` of Garcia &
Bruna's code (``models/gnn_iclr.py``) as Tseng et al.'s cross-domain few-shot code uses it
(``methods/gnn.py``, ``methods/gnnnet.py``), layer for layer.

Graphs (``graph``): with ``"query"`` each query gets its own graph (the few-shot
setting of Garcia & Bruna §4: one unlabelled node), the S support nodes and the
query node; with ``"class_set"`` (the layout of Tseng et al.'s code) graph i
holds the S support nodes and the i-th query of every class, N unlabelled
nodes, so an episode of N·Q queries makes Q graphs instead of N·Q and a step
scores N labelled queries for about the cost of one graph. ``"class_set"`` is
transductive: it needs class-major queries with the same count per class (as
the episode sampler gives them; query c·Q + i is the i-th of class c), and the
test graphs group the queries by their true class, so a query's prediction
depends on the other queries of its graph, one of each other class. A node's
features are its embedding (the backbone's vector through a Dense layer of
``embed_dim`` units and BatchNorm, no activation: ``GnnNet.fc``) joined with its
label, one-hot for the support and zeros for the query (both codes: ``zero_pad``
in Garcia & Bruna's ``MetricNN``, ``torch.zeros`` in ``GnnNet.support_label``;
their paper's Eq. 4 gives unlabelled nodes the uniform distribution instead).
Then, with x^(0) the node features (F_0 = ``embed_dim`` + N of them):

* learned adjacency (Eq. 3, ``Wcompute``): Ã_ij = MLP(|x_i - x_j|), an MLP
  of four 1x1 layers of the fixed widths 2·nf, 2·nf, nf, nf (``ratio=[2, 2, 1, 1]``
  of ``nf``, in every layer whatever its input width; 192, 192, 96, 96 for nf = 96),
  each with BatchNorm and leaky ReLU (slope 0.01), and a last 1x1 layer to one
  value; the diagonal is excluded and each row is softmax-normalised:
  A_i· = softmax_j≠i(Ã_ij);
* graph convolution (Eq. 2, ``Gconv``): x' = ρ(BN(Dense([x, A x]))), the
  operator family {I, A} (``J2``);
* dense connections: x^(k+1) = [x^(k), x'] (``num_layers`` = 2 layers of
  ``nf/2`` new features each: F_0 → F_0 + nf/2 → F_0 + nf), then a last adjacency
  and graph convolution to N values without BatchNorm or activation: the query
  nodes' class logits.

With the defaults (``embed_dim`` 128, nf 96, N = 5) the module has
(D + 1)·128 + 256 parameters for D backbone features (65,920 for D = 512), then
91,873 + 101,089 + 110,305 in the three adjacency MLPs (whose first layers read
133, 181 and 229 features) and 12,912 + 17,520 + 2,295 in the graph convolutions:
335,994, as the reference (``tests/test_reference_modules.py`` counts them layer by
layer against the reference's constructors). Before issue 27 the first two MLPs
had the widths 2F, 2F, F, F of their F input features (266, 266, 133, 133 and
362, 362, 181, 181): 603,050.

Where it differs from the reference code: the Dense biases start at zero (PyTorch draws
them, like the weights, from U(±1/√fan_in)); the kernels are drawn as PyTorch's with
``kernel_init="torch"`` (the default). Garcia & Bruna's ``GNN_nl_omniglot`` (their Omniglot
model, not the one Tseng et al. use) sizes its adjacency MLPs from the layer's input features
(``ratio=[2, 1.5, 1, 1]`` of it); ``GNN_nl``, their mini-ImageNet model and Tseng et al.'s, uses
the fixed ``nf`` widths above.

BatchNorm (``bn``, config field ``model.head_bn``): ``"batch"`` normalises each
episode with its own statistics in training and at test (Tseng et al.'s
``track_running_stats=False``, one episode per batch), ``"running"`` uses running
averages at test (Garcia & Bruna's code); see :mod:`omni_jax.algorithms.episodic`.

Trained with cross-entropy on the query logits. Outputs (R_meta's target):
the logits ``[T, Q, N]`` (or their softmax with ``outputs="probs"``). The
network is equivariant to the order of the nodes (BatchNorm too: its statistics
are over all nodes), so the query logits do not depend on the order of the
support set; Tseng et al.'s node order (each class's shots then its query) and
ours (the support set, then the queries) give the same logits.
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from omni_jax.algorithms.episodic import EmbedFn, ModuleFn, check_outputs, embed_episode, head_batch_norm, one_hot
from omni_jax.nn.models import kernel_initializer


def pairwise_abs_differences(x: jnp.ndarray) -> jnp.ndarray:
    """``|x_i - x_j|``: ``[B, V, F] -> [B, V, V, F]``."""
    return jnp.abs(x[:, :, None, :] - x[:, None, :, :])


def softmax_adjacency(scores: jnp.ndarray) -> jnp.ndarray:
    """Rows of ``scores [B, V, V]`` softmax-normalised over j ≠ i (the diagonal gets 0): each row sums to 1."""
    v = scores.shape[-1]
    return jax.nn.softmax(jnp.where(jnp.eye(v, dtype=bool), -jnp.inf, scores), axis=-1)


GRAPHS = ("query", "class_set")


def queries_per_graph(graph: str, n_way: int) -> int:
    """Unlabelled nodes in each graph: 1 (``"query"``) or ``n_way`` (``"class_set"``)."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown GNN graph layout {graph!r}; expected one of {', '.join(GRAPHS)}")
    return 1 if graph == "query" else n_way


def group_queries(query: jnp.ndarray, n_way: int, graph: str) -> jnp.ndarray:
    """``[T, Q, F] -> [T*G, Q/G, F]``: the unlabelled nodes of each graph, G graphs per episode. With
    ``"class_set"`` the Q = N·P class-major queries form P graphs, graph i holding query c·P + i of each
    class c (so the order within a graph is the class order); :func:`ungroup_queries` inverts it."""
    t, q, f = query.shape
    m = queries_per_graph(graph, n_way)
    if q % m:
        raise ValueError(f"the GNN's {graph!r} graphs need the same number of queries for each of the "
                         f"{n_way} classes, got {q} queries")
    # M groups of P = Q/M consecutive queries (the classes; one group for "query"): graph i takes the i-th of each
    return query.reshape(t, m, q // m, f).transpose(0, 2, 1, 3).reshape(t * (q // m), m, f)


def ungroup_queries(grouped: jnp.ndarray, t: int) -> jnp.ndarray:
    """The inverse of :func:`group_queries` (for either layout): ``[T*G, Q/G, F] -> [T, Q, F]``."""
    g, m, f = grouped.shape
    return grouped.reshape(t, g // t, m, f).transpose(0, 2, 1, 3).reshape(t, (g // t) * m, f)


def node_features(support_z: jnp.ndarray, support_onehot: jnp.ndarray, query_z: jnp.ndarray,
                  graph: str) -> jnp.ndarray:
    """``[T, S, E], [T, S, N], [T, Q, E] -> [T*G, S+Q/G, E+N]``: each of the G graphs of an episode
    holds the support nodes (embedding, one-hot label) then its unlabelled query nodes (embedding,
    zeros for the label, as both reference codes), G = Q for ``"query"`` (one query per graph), Q/N
    for ``"class_set"``; the graphs are episode-major (an episode's G graphs are consecutive)."""
    t, s, e = support_z.shape
    q, n = query_z.shape[1], support_onehot.shape[-1]
    support = jnp.concatenate([support_z, support_onehot], axis=-1)                       # [T, S, E+N]
    query = jnp.concatenate([query_z, jnp.zeros((t, q, n), query_z.dtype)], axis=-1)  # [T, Q, E+N]
    query = group_queries(query, n, graph)                                                 # [T*G, M, E+N]
    g = query.shape[0] // t
    support = jnp.broadcast_to(support[:, None], (t, g, s, e + n)).reshape(t * g, s, e + n)
    return jnp.concatenate([support, query], axis=1)


def adjacency_widths(nf: int) -> Tuple[int, int, int, int]:
    """The widths of ``Wcompute``'s four hidden 1x1 layers, ``ratio=[2, 2, 1, 1]`` of ``nf`` in both
    reference codes: ``(2·nf, 2·nf, nf, nf)`` in every layer, whatever its input width."""
    return (2 * nf, 2 * nf, nf, nf)


class Adjacency(nn.Module):
    """``Wcompute``: the learned, row-softmax adjacency ``[B, V, F] -> [B, V, V]`` (see the module doc);
    ``hidden`` the widths of its hidden layers (:func:`adjacency_widths` in the GNN). ``episodes``:
    how many episodes the B graphs are (consecutive blocks), for ``bn="batch"``."""

    hidden: Tuple[int, ...]
    kernel_init: str = "torch"
    bn: str = "batch"

    @nn.compact
    def __call__(self, x, train: bool = False, episodes: int = 1):
        init = kernel_initializer(self.kernel_init)
        h = pairwise_abs_differences(x)
        for i, width in enumerate(self.hidden):
            h = nn.Dense(width, kernel_init=init, name=f"layer{i}")(h)
            h = nn.leaky_relu(head_batch_norm(self.bn, f"bn{i}", h, episodes, train), 0.01)
        return softmax_adjacency(nn.Dense(1, kernel_init=init, name="last")(h)[..., 0])


class GraphConv(nn.Module):
    """``Gconv`` with the operators {I, A}: ``Dense([x, A x])``, BatchNorm unless last."""

    features: int
    batch_norm: bool = True
    kernel_init: str = "torch"
    bn: str = "batch"

    @nn.compact
    def __call__(self, adjacency, x, train: bool = False, episodes: int = 1):
        y = nn.Dense(self.features, kernel_init=kernel_initializer(self.kernel_init),
                     name="fc")(jnp.concatenate([x, adjacency @ x], axis=-1))
        return head_batch_norm(self.bn, "bn", y, episodes, train) if self.batch_norm else y


class GraphNetwork(nn.Module):
    """Garcia & Bruna's GNN: ``(support_f [T,S,D], support_onehot [T,S,N], query_f [T,Q,D], train)
    -> query logits [T, Q, N]``.

    ``kernel_init`` (every Dense layer; ``omni_jax.nn.models.KERNEL_INITS``): PyTorch's default
    (``"torch"``, U(±1/√fan_in)), as in the reference code. With Flax's ``lecun_normal`` (√3 times
    larger) the first loss is further above ln N and the network stays near chance longer: on
    separable toy episodes (5-way 1-shot, Adam 1e-3) it needed ~750 steps against ~500.
    ``graph``: ``"class_set"`` (one query of each class per graph, the default) or ``"query"`` (one
    query per graph; see the module doc). On the glyph benchmark (Conv-4 from scratch, 5-way 5-shot,
    15 queries per class) the GNN was still at chance after 200 steps of ``"query"`` graphs and
    reached 97.9% validation accuracy after 400 of ``"class_set"`` graphs (docs/glyph_algorithms.md;
    measured with the earlier adjacency widths 2F, 2F, F, F of the layer's F input features and
    uniform query labels).
    ``bn``: ``"batch"`` (each episode's statistics, training and test; Tseng et al.) or ``"running"``
    (running averages at test); see the module doc.
    """

    embed_dim: int = 128
    nf: int = 96
    num_layers: int = 2
    kernel_init: str = "torch"
    graph: str = "class_set"
    bn: str = "batch"

    @nn.compact
    def __call__(self, support_f, support_onehot, query_f, train: bool = False):
        if support_f.ndim != 3 or query_f.ndim != 3 or support_onehot.shape[:2] != support_f.shape[:2]:
            raise ValueError(f"GNN expects [T, S, D], [T, S, N], [T, Q, D], got {support_f.shape}, "
                             f"{support_onehot.shape}, {query_f.shape}")
        t, s, _ = support_f.shape
        q, n = query_f.shape[1], support_onehot.shape[-1]
        k = self.kernel_init
        z = nn.Dense(self.embed_dim, kernel_init=kernel_initializer(k),
                     name="embed")(jnp.concatenate([support_f, query_f], axis=1))
        z = head_batch_norm(self.bn, "embed_bn", z, t, train)
        x = node_features(z[:, :s], support_onehot, z[:, s:], self.graph)     # [T*G, S+M, E+N]
        widths = adjacency_widths(self.nf)
        for i in range(self.num_layers):                                      # F_0 + i·nf/2 features in
            a = Adjacency(widths, kernel_init=k, bn=self.bn, name=f"adjacency{i}")(x, train, t)
            x_new = GraphConv(self.nf // 2, kernel_init=k, bn=self.bn, name=f"gconv{i}")(a, x, train, t)
            x = jnp.concatenate([x, nn.leaky_relu(x_new, 0.01)], axis=-1)
        a = Adjacency(widths, kernel_init=k, bn=self.bn, name="adjacency_last")(x, train, t)
        out = GraphConv(n, batch_norm=False, kernel_init=k, name="gconv_last")(a, x, train, t)  # [T*G, S+M, N]
        return ungroup_queries(out[:, s:], t)


def gnn(embed_fn: EmbedFn, module_fn: ModuleFn, n_way: int, outputs: str = "logits"):
    """GNN meta-loss over a batch of episodes: ``(mean query cross-entropy, outputs [T, Q, n_way])``.
    ``module_fn(params, flow, support_f, support_onehot, query_f)`` applies the flow's
    :class:`GraphNetwork`."""
    check_outputs(outputs)

    def meta_loss(params, episode, flow):
        fs, fq = embed_episode(embed_fn, params, episode, flow)
        if fs.ndim != 3:
            raise ValueError(f"the GNN needs feature vectors [T, S, D], got {fs.shape}")
        logits = module_fn(params, flow, fs, one_hot(episode["support"]["y"], n_way, fs.dtype), fq)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, episode["query"]["y"]))
        return loss, (jax.nn.softmax(logits) if outputs == "probs" else logits)

    return meta_loss
