"""The drivers of the paper's tables and figures: ``python -m experiments.<name>`` from the
repository root (experiments/README.md)."""
