"""Templates: native types, the slug filter, messages in the recipe's own names, and the sandbox's limits."""

from __future__ import annotations

import pytest

from engine.errors import Location, RecipeError, TemplateFailure
from engine.slug import slug
from engine.templating import compile_value

WHERE = Location("r.yaml", 3)


def render(text: object, **context: object) -> object:
    return compile_value(text, where=WHERE, field="params.x").render(context)


def test_a_single_expression_keeps_its_type() -> None:
    assert render("{{ n }}", n=30) == 30
    assert render("{{ size.width }}", size={"width": 512}) == 512
    assert render(" {{ flag }} ", flag=True) is True
    assert render("{{ n }} px", n=30) == "30 px"


def test_lists_and_mappings_are_walked() -> None:
    assert render(["{{ a }}", "b", {"c": "{{ a }}!"}], a=1) == [1, "b", {"c": "1!"}]
    assert render(7) == 7


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16:9 (Panorama)", "16x9"),
        ("Brass Arc Lamp", "brass-arc-lamp"),
        ("Crème brûlée", "creme-brulee"),
        ("***", "_"),
        (True, "true"),
    ],
)
def test_slug(value: object, expected: str) -> None:
    assert slug(value) == expected
    assert render("{{ v | slug }}", v=value) == expected


@pytest.mark.parametrize(
    ("template", "context", "message"),
    [
        (
            "{{ prodct.noun }}",
            {"product": {}},
            "'prodct' is undefined; did you mean 'product'? (defined: product)",
        ),
        (
            "A {{ product.nown }}",
            {"product": {"id": "sofa", "noun": "sofa"}},
            "'product' has no key 'nown'; did you mean 'noun'? (keys: id, noun)",
        ),
        (
            "{{ style['scene'] }}",
            {"style": "cozy"},
            "'style' is 'cozy', not a mapping; it has no key 'scene'",
        ),
        (
            "{{ ''.__class__ }}",
            {},
            "not allowed in a template: access to attribute '__class__' of 'str' object is unsafe.",
        ),
        (
            "{{ 'x' * 10**10 }}",
            {},
            "not allowed in a template: a value longer than 1,000,000 is not allowed",
        ),
        (
            "{{ 2 ** 100000 }}",
            {},
            "not allowed in a template: an exponent above 256 is not allowed",
        ),
        ("{{ 1 / 0 }}", {}, "template failed: ZeroDivisionError: division by zero"),
    ],
)
def test_failures_speak_the_recipes_language(
    template: str, context: dict[str, object], message: str
) -> None:
    with pytest.raises(TemplateFailure) as caught:
        render(template, **context)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ x | uppr }}", "r.yaml:3: params.x: unknown filter 'uppr'; did you mean 'upper'?"),
        ("{{ x }", "r.yaml:3: params.x: template syntax error: unexpected '}'"),
        (
            "{% if x %}",
            "r.yaml:3: params.x: template syntax error: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
        ),
    ],
)
def test_compile_errors_name_the_line(template: str, message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        compile_value(template, where=WHERE, field="params.x")
    assert str(caught.value) == message


def test_templates_cannot_reach_the_environment_or_files() -> None:
    with pytest.raises(TemplateFailure):
        render("{{ self.__init__.__globals__ }}")
    with pytest.raises(TemplateFailure, match="undefined"):
        render("{{ environ }}")
