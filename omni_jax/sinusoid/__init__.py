"""Sinusoid regression (paper §6.2)."""
