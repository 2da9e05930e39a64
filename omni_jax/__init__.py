"""omni-jax: Omni-Training (Shu et al.) in JAX/Flax.

* ``omni_jax.omnify(module, **options)``: any Flax model as an Omni-Net (§4.1), every dense and
  convolutional layer an Omni-Layer, every norm one copy per flow (``omni_jax.nn.transform``).
* ``omni_jax.nn``: the flows and their routing, Omni-Layers, per-flow norms, backbones, the Omni-Head (§4.1).
* ``omni_jax.algorithms``: pre-training and meta-training algorithms (§5).
* ``omni_jax.omni``: the Omni-Loss, the EMA teacher and the update step (§4.2, Eqs. 7-15).
* ``omni_jax.training``: the loop, the experiment runner, checkpoints, sharding, metrics.
* ``omni_jax.configs``: every experiment's config and its variants.
* ``omni_jax.sinusoid``, ``omni_jax.rl``, ``omni_jax.classification``: the experiments (§6),
  each with ``train_and_evaluate(config, workdir)``.
* ``omni_jax.data``: sinusoid tasks, image datasets and their on-disk formats (the glyph
  benchmark's included: ``omni_jax.data.formats.glyphs``).
* ``omni_jax.glyphs``: the offline glyph benchmark's builder.
* ``omni_jax.devtools``: the package's import graph and layer order (``scripts/import_map.py``,
  ``tests/test_layering.py``): imports flow one way, with no cycles.

``import omni_jax`` imports nothing else (the CLI starts with it): ``omni_jax.omnify`` imports
Flax and ``omni_jax.nn`` on first use.
"""
__version__ = "0.1.0"
__all__ = ["__version__", "omnify"]


def __getattr__(name):
    if name == "omnify":
        from omni_jax.nn.transform import omnify
        return omnify
    raise AttributeError(f"module 'omni_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["omnify"])
