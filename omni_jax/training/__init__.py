"""Training: the loop, the experiment runner, checkpoints, model selection, sharding, metrics and PRNG streams."""
from omni_jax.training.checkpoint import CheckpointStore, write_atomic
from omni_jax.training.loop import Chunk, Hook, TrainState, scan_steps, train_loop
from omni_jax.training.metrics import MetricsWriter, mean_ci95
from omni_jax.training.rng import STREAMS, prng_stream
from omni_jax.training.selection import Best, Selected, initial_best, selected, validation_hook
from omni_jax.training.sharding import (check_divisible, initialize_distributed, replicate, shard_tasks,
                                        task_mesh)

__all__ = ["Best", "CheckpointStore", "Selected", "initial_best", "selected", "validation_hook", "Chunk", "Hook", "MetricsWriter", "STREAMS", "TrainState", "check_divisible",
           "initialize_distributed", "mean_ci95", "prng_stream", "replicate", "scan_steps", "shard_tasks",
           "task_mesh", "train_loop", "write_atomic"]
