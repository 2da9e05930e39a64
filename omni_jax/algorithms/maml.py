"""MAML (paper §5.2, Eq. 19) with a ``lax.scan`` inner loop.

The inner loop takes ``num_steps`` SGD steps built with ``jax.grad`` on the
support set; the meta-loss is the task loss of the adapted parameters on the
query set, vmapped over a batch of tasks. Second-order by default: the
meta-gradient flows through the inner gradients. ``first_order=True`` stops
the gradient through them (FOMAML).

Many tasks at once:

* ``task_chunk``: the task axis is processed in chunks of that many tasks
  (``lax.map`` over chunks, ``vmap`` inside one, each chunk rematerialised),
  so the working set stays in cache and the memory of one step is that of
  one chunk whatever the meta-batch.
* :func:`maml_dense`: an exact fast path for stacks of dense layers. After
  an SGD step on K support points, a dense layer's weight moves by a sum of
  K outer products, ``W' = W - lr·Aᵀ Δ`` (A: the layer's inputs on the
  support set, Δ: the loss's gradient at its outputs), so the adapted layer
  applied to a query input u is ``u W - lr·(u Aᵀ) Δ``: the large product
  ``u W`` is shared by all tasks (one big matrix product over every task's
  points) and each task only adds a rank-K correction. No task's adapted
  weights are ever formed. Its losses, outputs and (second-order)
  gradients equal :func:`maml`'s up to float rounding (tested).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from omni_jax.algorithms.pretrain import ApplyFn
from omni_jax.nn.models import DenseLayer, DenseLayersFn

Params = Any
MetaAlgorithm = Callable[[Params, dict, str], Tuple[jnp.ndarray, jnp.ndarray]]


def sgd_adapt(loss_fn: Callable[[Params], jnp.ndarray], params: Params, *, lr: float, num_steps: int,
              first_order: bool = False, mask: Optional[Params] = None,
              observe: Optional[Callable[[Params], Any]] = None, unroll: int | bool = 1):
    """``num_steps`` of plain SGD on ``loss_fn``, as a ``lax.scan``.

    Args:
      loss_fn: scalar loss of the parameters (the support loss).
      lr: the inner learning rate.
      first_order: drop second-order terms (stop the gradient of the inner gradients).
      mask: optional pytree of 0/1 like ``params``; only entries with 1 adapt.
      observe: optional function of the parameters after each step; its
        outputs are stacked along a leading ``num_steps`` axis.
      unroll: ``lax.scan``'s ``unroll`` (``True``: every step inlined). XLA:CPU runs a
        convolution inside a loop body an order of magnitude slower than the same
        convolution inlined (docs/benchmarks.md).

    Returns:
      ``(adapted_params, observed)``; ``observed`` is ``None`` without ``observe``.
    """

    def step(p, _):
        g = jax.grad(loss_fn)(p)
        if first_order:
            g = lax.stop_gradient(g)
        if mask is not None:
            g = jax.tree_util.tree_map(lambda gi, mi: gi * mi, g, mask)
        p = jax.tree_util.tree_map(lambda pi, gi: pi - lr * gi, p, g)
        return p, (observe(p) if observe is not None else None)

    return lax.scan(step, params, None, length=num_steps, unroll=unroll)


def map_tasks(task_fn: Callable[[Params, dict], Tuple[jnp.ndarray, Any]], params: Params, episode: dict,
              task_chunk: Optional[int], remat: bool = True, unroll: int | bool = 1) -> Tuple[jnp.ndarray, Any]:
    """``vmap`` of ``task_fn(params, task) -> (loss, outputs)`` over the episode's task axis, in
    chunks of ``task_chunk`` tasks (``None``: all at once).

    Chunk ``i`` holds tasks ``i, i + n, i + 2n, ...`` (strided), so a task axis split over
    devices stays split inside every chunk; a remainder is one more ``vmap``. The results
    come back in the tasks' order.

    ``remat`` (default): each chunk is rematerialised (``jax.checkpoint``): the backward pass
    recomputes a chunk's forward pass from its inputs instead of keeping every chunk's
    intermediates, so the memory of a step is that of one chunk, and each chunk's working set
    stays in cache through its forward and backward passes. Without it ``lax.map`` keeps the
    intermediates of every chunk and a chunked step needs more memory than an unchunked one
    (measured in docs/benchmarks.md).

    ``task_chunk=1`` is a plain ``lax.map``, one task after the other with no batch axis:
    where each task has parameters of its own (an adapted network) and many points, XLA:CPU
    runs the unbatched matrix products faster than the batched ones.
    ``unroll`` is that loop's (``lax.scan``'s ``unroll``; see :func:`sgd_adapt` for convolutions).
    """
    t = jax.tree_util.tree_leaves(episode)[0].shape[0]
    if task_chunk == 1 and t > 1:
        return lax.scan(lambda c, e: (c, task_fn(params, e)), None, episode, unroll=unroll)[1]
    batched = jax.vmap(task_fn, in_axes=(None, 0))
    if not task_chunk or t <= task_chunk:
        return batched(params, episode)
    n, c = t // task_chunk, task_chunk
    main = jax.tree_util.tree_map(lambda a: a[:n * c].reshape((c, n) + a.shape[1:]).swapaxes(0, 1), episode)
    body = jax.checkpoint(batched) if remat else batched
    out = lax.map(lambda e: body(params, e), main)
    out = jax.tree_util.tree_map(lambda a: a.swapaxes(0, 1).reshape((n * c,) + a.shape[2:]), out)
    if n * c < t:
        rest = batched(params, jax.tree_util.tree_map(lambda a: a[n * c:], episode))
        out = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), out, rest)
    return out


def maml(apply_fn: ApplyFn, task_loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray], *,
         inner_lr: float, num_steps: int = 1, first_order: bool = False,
         task_chunk: Optional[int] = 256, unroll: int | bool = 1) -> MetaAlgorithm:
    """MAML meta-loss over a batch of tasks.

    The returned function takes ``(params, episode, flow)`` where ``episode``
    is ``{"support": {"x", "y"}, "query": {"x", "y"}}`` with a leading task
    axis, and returns ``(mean query loss, query predictions [tasks, ...])``.
    Tasks are processed ``task_chunk`` at a time (:func:`map_tasks`; ``None``:
    all at once): on a 2-core CPU, 10,000 sinusoid tasks ran about twice as
    fast in chunks of 100-500 as all at once. ``unroll`` is the inner loop's
    (:func:`sgd_adapt`) and, with ``task_chunk=1``, the loop over tasks'
    (:func:`map_tasks`); ``True`` for convolutional networks on CPU.
    """

    def one_task(params, task, flow):
        support, query = task["support"], task["query"]
        support_loss = lambda p: task_loss(apply_fn(p, support["x"], flow), support["y"])
        adapted, _ = sgd_adapt(support_loss, params, lr=inner_lr, num_steps=num_steps,
                               first_order=first_order, unroll=unroll)
        pred = apply_fn(adapted, query["x"], flow)
        return task_loss(pred, query["y"]), pred

    def meta_loss(params, episode, flow):
        losses, preds = map_tasks(lambda p, task: one_task(p, task, flow), params, episode, task_chunk,
                                  unroll=unroll)
        return jnp.mean(losses), preds

    return meta_loss


def _dense_forward(layers: Sequence[DenseLayer], activation, factors, x, lr: float):
    """The network after the inner steps whose factors are given: ``factors[l]`` is a list of
    ``(A, Δ)`` (one per step), and layer ``l``'s adapted map is
    ``z = x W + b - copies·lr·Σ_steps [(x Aᵀ) Δ + Σ_k Δ_k]``. Returns the output, every layer's
    input and every layer's ``z``."""
    h, inputs, zs = x, [], []
    for i, (layer, fs) in enumerate(zip(layers, factors)):
        inputs.append(h)
        z = h @ layer.kernel + layer.bias
        for a, d in fs:
            z = z - layer.copies * lr * ((h @ a.T) @ d + jnp.sum(d, axis=0))
        zs.append(z)
        h = activation(z) if i < len(layers) - 1 else z
    return h, inputs, zs


def _dense_deltas(layers: Sequence[DenseLayer], activation, derivative, factors, zs, out_grad, lr: float):
    """Back-propagation through :func:`_dense_forward`, written out: Δ of every layer (the
    gradient at its ``z``) from the gradient at the output. Through layer ``l`` the gradient at
    its input is ``Δ_l Wᵀ - copies·lr·Σ_steps (Δ_l Dᵀ) A`` (the transpose of its adapted map);
    through the activation it is multiplied by the activation's derivative at ``z`` (``derivative``,
    or a forward-mode derivative when it is ``None``). Written out rather than taken with
    ``jax.grad`` with respect to zero probes on ``z``, and with the closed-form derivative rather
    than the activation's ``vjp``: the same numbers, and a faster second-order meta-gradient on
    XLA:CPU."""
    deltas = [None] * len(layers)
    d = out_grad
    for i in range(len(layers) - 1, -1, -1):
        deltas[i] = d
        if i == 0:
            break
        layer = layers[i]
        g = d @ layer.kernel.T
        for a, dd in factors[i]:
            g = g - layer.copies * lr * ((d @ dd.T) @ a)
        z = zs[i - 1]
        d = g * (derivative(z) if derivative is not None else jax.jvp(activation, (z,), (jnp.ones_like(z),))[1])
    return deltas


def maml_dense(layers_fn: DenseLayersFn, task_loss: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray], *,
               inner_lr: float, num_steps: int = 1, first_order: bool = False,
               task_chunk: Optional[int] = 1000) -> MetaAlgorithm:
    """:func:`maml` for a network that is a stack of dense layers, without forming any task's
    adapted weights (see the module doc): the same losses, outputs and gradients.

    Args:
      layers_fn: ``(params, flow) -> (layers, activation, derivative)``: the flow's
        :class:`~omni_jax.nn.models.DenseLayer`s, the activation after every layer but the last, and its elementwise
        derivative (``None``: forward-mode autodiff), for example
        :func:`omni_jax.nn.models.mlp_dense_layers`.
      task_loss, inner_lr, num_steps, first_order: as for :func:`maml`.
      task_chunk: tasks per chunk (:func:`map_tasks`); chunks of 500-1,000 keep a step's working
        set in cache and its memory flat in the number of tasks (docs/benchmarks.md).
    """

    def one_task(params, task, flow):
        layers, activation, derivative = layers_fn(params, flow)
        support, query = task["support"], task["query"]
        factors = [[] for _ in layers]
        for _ in range(num_steps):
            out, inputs, zs = _dense_forward(layers, activation, factors, support["x"], inner_lr)
            out_grad = jax.grad(lambda o: task_loss(o, support["y"]))(out)
            deltas = _dense_deltas(layers, activation, derivative, factors, zs, out_grad, inner_lr)
            if first_order:
                deltas, inputs = lax.stop_gradient(deltas), lax.stop_gradient(inputs)
            factors = [fs + [(a, d)] for fs, a, d in zip(factors, inputs, deltas)]
        pred = _dense_forward(layers, activation, factors, query["x"], inner_lr)[0]
        return task_loss(pred, query["y"]), pred

    def meta_loss(params, episode, flow):
        losses, preds = map_tasks(lambda p, task: one_task(p, task, flow), params, episode, task_chunk)
        return jnp.mean(losses), preds

    return meta_loss
