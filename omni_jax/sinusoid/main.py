"""``omni-jax sinusoid``: the command line of :func:`omni_jax.sinusoid.train_and_evaluate`."""
from __future__ import annotations

from omni_jax import cli

EXAMPLES = """\
  omni-jax sinusoid --workdir runs/sinusoid                       # the paper's protocol: about 4½ min on 2 cores
  omni-jax sinusoid --quick                                       # a smoke run
  omni-jax sinusoid --config.data.phase_max=3.141592653589793     # MAML's original phase range
  omni-jax sinusoid --config.omni.lam=0.0                         # no self-distillation
"""


def add_arguments(parser) -> None:
    cli.add_common(parser, config="sinusoid", workdir="runs/sinusoid", examples=EXAMPLES)


def run(args, overrides) -> int:
    from omni_jax.sinusoid import train_and_evaluate
    cfg = cli.load_config(args, overrides, "sinusoid")
    train_and_evaluate(cfg, cli.default_workdir(args, "runs/sinusoid"), **cli.run_options(args))
    return 0
