"""Deterministic source simulators that fill the landing zone (and say what they wrote)."""

from lakehouse.simulator.retail import TRUTH_PATH, SimulationConfig, generate

__all__ = ["TRUTH_PATH", "SimulationConfig", "generate"]
