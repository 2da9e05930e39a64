"""``omni-jax rl``: the command line of :func:`omni_jax.rl.train_and_evaluate`."""
from __future__ import annotations

from omni_jax import cli

ENVS = ("navigation2d", "halfcheetah_vel", "halfcheetah_dir")
EXAMPLES = """\
  omni-jax rl --env navigation2d --workdir runs/rl_navigation2d     # the paper's protocol
  omni-jax rl --env halfcheetah_vel --quick                         # a smoke run (halfcheetah_dir too)
  omni-jax rl --env navigation2d --config.train.first_order=True    # first-order MAML-RL
  omni-jax rl --env halfcheetah_dir --config.env.backend=generalized
  omni-jax rl --config rl_halfcheetah_vel_cpu                       # sized for 2 CPU cores (runs/rl_halfcheetah_vel_cpu)
"""


def add_arguments(parser) -> None:
    cli.add_common(parser, config="rl_<env>", workdir="runs/<packaged config name>, else runs/rl_<env>",
                   examples=EXAMPLES)
    parser.add_argument("--env", default=None,
                        help=f"environment: {', '.join(ENVS)}; selects the config rl_<env> unless --config is "
                             "given (default: the config's env, navigation2d without --config)")


def run(args, overrides) -> int:
    from omni_jax.errors import OmniJaxError
    from omni_jax.rl.experiment import train_and_evaluate
    if args.env is not None and args.env not in ENVS:
        raise OmniJaxError(f"unknown env {args.env!r}; expected one of {', '.join(ENVS)}")
    cfg = cli.load_config(args, overrides, f"rl_{args.env or 'navigation2d'}")
    if args.env is not None and cfg.env.name != args.env:
        raise OmniJaxError(f"config {args.config} is for env {cfg.env.name!r}, not --env {args.env}")
    from omni_jax.config import packaged_configs
    name = args.config if args.config in packaged_configs() else f"rl_{cfg.env.name}"
    train_and_evaluate(cfg, cli.default_workdir(args, f"runs/{name}"), **cli.run_options(args))
    return 0
