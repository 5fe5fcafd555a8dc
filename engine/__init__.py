"""render: a declarative render engine for Segmind's image APIs.

The public API. Names load on first use, so `import engine` (and `render --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.backends import Backend, preview_backend, replay_backend, segmind_backend
    from engine.docimport import ImportResult, Note, generate_spec, import_page, import_text
    from engine.errors import (
        Abort,
        Ambiguous,
        ApiProblem,
        BudgetError,
        CredentialError,
        ImageError,
        InputError,
        JobFailed,
        LedgerError,
        LedgerUnreachable,
        Location,
        OutputError,
        OverlayError,
        PayloadError,
        Problem,
        RecipeError,
        RenderError,
        Retryable,
        SpecError,
        SpecImportError,
        TemplateFailure,
        Violation,
        YamlError,
    )
    from engine.executor import execute
    from engine.ledger import Ledger, open_ledger
    from engine.localimage import LocalImage
    from engine.plan import Job, Plan, PlanProblem, build_plan
    from engine.pools import Pool, Pools
    from engine.queue import Queue
    from engine.recipe import Recipe, RecipeFile, load_recipe
    from engine.results import CassetteUse, Result, RunOptions, RunSummary
    from engine.simulator import SimulatorConfig, create_app
    from engine.specs import Param, Spec, available_specs, load_spec, load_spec_file
    from engine.validation import check_payload, payload_violations

__all__ = [
    "Abort",
    "Ambiguous",
    "ApiProblem",
    "Backend",
    "BudgetError",
    "CassetteUse",
    "CredentialError",
    "ImageError",
    "ImportResult",
    "InputError",
    "Job",
    "JobFailed",
    "Ledger",
    "LedgerError",
    "LedgerUnreachable",
    "LocalImage",
    "Location",
    "Note",
    "OutputError",
    "OverlayError",
    "Param",
    "PayloadError",
    "Plan",
    "PlanProblem",
    "Pool",
    "Pools",
    "Problem",
    "Queue",
    "Recipe",
    "RecipeError",
    "RecipeFile",
    "RenderError",
    "Result",
    "Retryable",
    "RunOptions",
    "RunSummary",
    "SimulatorConfig",
    "Spec",
    "SpecError",
    "SpecImportError",
    "TemplateFailure",
    "Violation",
    "YamlError",
    "available_specs",
    "build_plan",
    "check_payload",
    "create_app",
    "execute",
    "generate_spec",
    "import_page",
    "import_text",
    "load_recipe",
    "load_spec",
    "load_spec_file",
    "open_ledger",
    "payload_violations",
    "preview_backend",
    "replay_backend",
    "segmind_backend",
]

_HOMES = {
    "engine.docimport": ("ImportResult", "Note", "generate_spec", "import_page", "import_text"),
    "engine.backends": ("Backend", "preview_backend", "replay_backend", "segmind_backend"),
    "engine.executor": ("execute",),
    "engine.ledger": ("Ledger", "open_ledger"),
    "engine.pools": ("Pool", "Pools"),
    "engine.queue": ("Queue",),
    "engine.plan": ("Job", "Plan", "PlanProblem", "build_plan"),
    "engine.recipe": ("Recipe", "RecipeFile", "load_recipe"),
    "engine.results": ("CassetteUse", "Result", "RunOptions", "RunSummary"),
    "engine.simulator": ("SimulatorConfig", "create_app"),
    "engine.errors": (
        "Abort",
        "Ambiguous",
        "ApiProblem",
        "BudgetError",
        "CredentialError",
        "ImageError",
        "InputError",
        "JobFailed",
        "LedgerError",
        "LedgerUnreachable",
        "Location",
        "OutputError",
        "OverlayError",
        "PayloadError",
        "Problem",
        "RecipeError",
        "RenderError",
        "Retryable",
        "SpecError",
        "SpecImportError",
        "TemplateFailure",
        "Violation",
        "YamlError",
    ),
    "engine.localimage": ("LocalImage",),
    "engine.specs": ("Param", "Spec", "available_specs", "load_spec", "load_spec_file"),
    "engine.validation": ("check_payload", "payload_violations"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
