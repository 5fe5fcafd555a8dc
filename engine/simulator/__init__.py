"""A local Segmind: the ASGI simulator, its preview compositor, and ways to serve it."""

from __future__ import annotations

from engine.simulator.app import Simulator, create_app
from engine.simulator.config import FaultRates, SimulatorConfig, parse_faults
from engine.simulator.server import serve, serving
from engine.simulator.state import Charge
from engine.specs import Spec, available_specs, load_spec

__all__ = [
    "Charge",
    "FaultRates",
    "Simulator",
    "SimulatorConfig",
    "all_specs",
    "create_app",
    "parse_faults",
    "serve",
    "serving",
]


def all_specs() -> tuple[Spec, ...]:
    """Every spec the engine knows, for a simulator that serves them all."""
    return tuple(load_spec(spec_id) for spec_id in available_specs())
