"""Omni-Net building blocks: the flows and their routing, Omni-Layers, per-flow norms, backbones,
the Omni-Head, and :func:`omnify`, which makes a plain Flax model an Omni-Net."""
from omni_jax.nn.flows import (BRANCHES, FLOWS, FlowApply, check_flow, each_flow, flow_apply, flow_branch,
                               route)
from omni_jax.nn.layers import FlowBatchNorm, OmniConv, OmniDense, OmniHead, flow_activation
from omni_jax.nn.models import DenseLayer, OmniMLP, OmniMLPBackbone
from omni_jax.nn.transform import Omnified, OmnifyReport, OmnifyWarning, omnify

__all__ = ["BRANCHES", "DenseLayer", "FLOWS", "FlowApply", "FlowBatchNorm", "OmniConv", "OmniDense", "OmniHead",
           "OmniMLP", "OmniMLPBackbone", "Omnified", "OmnifyReport", "OmnifyWarning", "check_flow", "each_flow",
           "flow_activation", "flow_apply", "flow_branch", "omnify", "route"]
