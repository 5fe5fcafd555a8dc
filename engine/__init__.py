"""render: a declarative render engine for Segmind's image APIs.

The public API. Names load on first use, so `import engine` (and `render --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.docimport import ImportResult, Note, generate_spec, import_page, import_text
    from engine.errors import (
        InputError,
        Location,
        OverlayError,
        PayloadError,
        RenderError,
        SpecError,
        SpecImportError,
        Violation,
        YamlError,
    )
    from engine.localimage import LocalImage
    from engine.specs import Param, Spec, available_specs, load_spec, load_spec_file
    from engine.validation import check_payload, payload_violations

__all__ = [
    "ImportResult",
    "InputError",
    "LocalImage",
    "Location",
    "Note",
    "OverlayError",
    "Param",
    "PayloadError",
    "RenderError",
    "Spec",
    "SpecError",
    "SpecImportError",
    "Violation",
    "YamlError",
    "available_specs",
    "check_payload",
    "generate_spec",
    "import_page",
    "import_text",
    "load_spec",
    "load_spec_file",
    "payload_violations",
]

_HOMES = {
    "engine.docimport": ("ImportResult", "Note", "generate_spec", "import_page", "import_text"),
    "engine.errors": (
        "InputError",
        "Location",
        "OverlayError",
        "PayloadError",
        "RenderError",
        "SpecError",
        "SpecImportError",
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
