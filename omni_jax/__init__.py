"""omni-jax: Omni-Training (Shu et al.) in JAX/Flax.

* ``omni_jax.nn``: Omni-Layers, per-flow norms, backbones, the Omni-Head (§4.1).
* ``omni_jax.algorithms``: pre-training and meta-training algorithms (§5).
* ``omni_jax.omni``: the Omni-Loss and the EMA teacher (§4.2, Eqs. 7-15).
* ``omni_jax.training``: the jitted loop, checkpoints, sharding, metrics.
* ``omni_jax.sinusoid``: the regression experiment (§6.2).
"""
__version__ = "0.1.0"
