"""Omni-Net building blocks: Omni-Layers, per-flow norms, backbones and the Omni-Head."""
from omni_jax.nn.layers import (BRANCHES, FLOWS, FlowBatchNorm, OmniConv, OmniDense, OmniHead,
                                check_flow, flow_activation)
from omni_jax.nn.models import DenseLayer, OmniMLP, OmniMLPBackbone

__all__ = ["BRANCHES", "DenseLayer", "FLOWS", "FlowBatchNorm", "OmniConv", "OmniDense", "OmniHead", "OmniMLP",
           "OmniMLPBackbone", "check_flow", "flow_activation"]
