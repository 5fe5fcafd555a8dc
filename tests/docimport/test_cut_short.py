"""A page cut short anywhere imports what is there, or says clearly that it cannot; never a traceback."""

from __future__ import annotations

import pytest

from engine.docimport import import_page, import_text
from engine.errors import SpecImportError
from tests.helpers import SPEC_IDS, seed_page


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_every_cut_imports_a_prefix_of_the_parameters_or_names_the_problem(spec_id: str) -> None:
    page = seed_page(spec_id)
    full = import_page(page).spec
    lines = page.read_text(encoding="utf-8").split("\n")
    listed_from = next((i for i, line in enumerate(lines) if line.strip() == "Parameters"), None)
    imported = 0
    refusals: list[str] = []
    for cut in range(1, len(lines)):
        text = "\n".join(lines[:cut])
        try:
            result = import_text(text, name=page.name, spec_id=spec_id)
        except SpecImportError as exc:
            refusals.append(str(exc))
            continue
        imported += 1
        names = list(result.spec.params)
        assert set(names) <= set(full.params), cut
        # Parameters the sample sends after the cut come last, each with a note saying so.
        after_cut = [
            n
            for n in names
            if any(f"before it lists '{n}'" in note.message for note in result.notes)
        ]
        listed = [n for n in names if n not in after_cut]
        assert names == listed + after_cut, cut
        if listed_from is not None and cut > listed_from:
            # What was read is what the full page lists, as far as the page went.
            assert listed == list(full.params)[: len(listed)], cut
    assert imported > 0
    assert all(message.startswith(f"{page.name}:") for message in refusals)


def test_cut_inside_the_parameter_list_warns_and_keeps_what_was_read() -> None:
    page = seed_page("scenecraft")
    lines = page.read_text(encoding="utf-8").split("\n")
    cut = next(i for i, line in enumerate(lines) if line == "megapixeloptional")
    result = import_text("\n".join(lines[:cut]), name="scenecraft.txt", spec_id="scenecraft")
    names = list(result.spec.params)
    # After the last one listed come those the sample sends after the cut, each said to be so.
    after = names[names.index("image_quality") + 1 :]
    assert "megapixel" in after
    messages = [n.message for n in result.notes]
    assert all(any(f"before it lists '{n}'" in m for m in messages) for n in after)
    assert "the page ends inside the parameter list; read what is there" in [
        n.message for n in result.notes
    ]
