"""Templates cannot build huge values, loop without end or crash the compiler: each gets a message.

Most cases here used to take gigabytes, hang or end in a traceback. The tests assert the message a
recipe author sees; the memory test shows the refusal comes before the allocation, not after it.
"""

from __future__ import annotations

import tracemalloc

import pytest

from engine.errors import Location, RecipeError, TemplateFailure
from engine.templating import compile_value

WHERE = Location("r.yaml", 3)

TOO_LONG = "not allowed in a template: a value longer than 1,000,000 is not allowed"
TOO_MANY_DIGITS = "not allowed in a template: a number longer than 4,300 digits is not allowed"
TOO_MANY_ITERATIONS = (
    "not allowed in a template: more than 100,000 loop iterations and macro calls in one value "
    "are not allowed"
)
TOO_MUCH_WORK = (
    "not allowed in a template: more than 5,000,000 steps of work in one value are not allowed "
    "(a step is a character or item built, compared or written, or a statement run in a loop)"
)
RESULT_TOO_LONG = (
    "not allowed in a template: a result longer than 100,000 characters is not allowed"
)
TOO_DEEP = (
    "not allowed in a template: recursion this deep is not allowed (does a macro or a recursive "
    "loop call itself without end?)"
)


def render(text: object, **context: object) -> object:
    return compile_value(text, where=WHERE, field="params.x").render(context)


def failure(text: object, **context: object) -> str:
    with pytest.raises(TemplateFailure) as caught:
        render(text, **context)
    return caught.value.message


HUGE_STRINGS = [
    # printf-style formatting: widths, precisions and `*` widths taken from the arguments
    "{{ '%0999999999d' % 1 }}",
    "{{ '%-999999999s' % 'x' }}",
    "{{ '%.999999999f' % 1.5 }}",
    "{{ '%.999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%.*f' % (999999999, 1.5) }}",
    "{{ '%(a)999999999s' % {'a': 1} }}",
    "{{ '%((a))999999999s' % {'(a)': 1} }}",
    "{{ ('%999999s' * 100) % ((1,) * 100) }}",
    "{{ '%0999999999d'.encode() % (1,) }}",
    # str.format and format_map, nested widths included
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:.999999999f}'.format(1.5) }}",
    "{{ '{:{}}'.format(1, 999999999) }}",
    "{{ '{:{w}}'.format(1, w=999999999) }}",
    "{{ '{x:>{w}}'.format_map({'x': 1, 'w': 999999999}) }}",
    "{{ ('{0:999999}' * 100).format(1) }}",
    # str methods that pad, repeat or multiply
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.rjust(10**9) }}",
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "{{ ('x' * 2000).join(['y'] * 1000) }}",
    "{{ ('x' * 1000000).replace('', 'yy') }}",
    "{{ ('x' * 1000).replace('x', 'y' * 10000) }}",
    "{{ ('x' * 1000).translate({120: 'y' * 10000}) }}",
    "{{ 'x'.encode().ljust(10**9) }}",
    "{{ 'x'.encode().center(10**9) }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    # Jinja's filters that build strings or lists
    "{{ 'x' | center(999999999) }}",
    "{{ 'a\nb' | indent(999999999) }}",
    "{{ ('a\n' * 100000) | indent(100) }}",
    "{{ 'a\nb' | indent('x' * 1000000, true) }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ '%(a)999999999s' | format(a=1) }}",
    "{{ ('x ' * 50000) | wordwrap(1, wrapstring='y' * 100) }}",
    "{{ ('x' * 1000) | replace('x', 'y' * 10000) }}",
    "{{ ('x' * 100000) | replace('', 'y' * 100) }}",
    "{{ range(100000) | map('string') | join('x' * 100) }}",
    "{{ range(10) | batch(999999999, 'x') | list }}",
    "{{ range(10) | slice(999999999) | list }}",
    "{{ [1] | tojson(999999999) }}",
    "{{ lipsum(999999) }}",
    "{{ lipsum(1, max=999999999) }}",
    # `~`, `+` and literals doubling in a loop
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = (ns.l, ns.l) %}{% endfor %}",
    "{% set ns = namespace(l=1) %}{% for i in range(40) %}{% set ns.l = {'a': ns.l, 'b': ns.l} %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = dict(a=ns.l, b=ns.l) %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = [ns.l] * 2 %}{% endfor %}",
    "{{ ['x' * 1000] * 2000 }}",
    "{{ [[0] * 1000] * 2000 }}",
    "{% set s %}{% for i in range(100000) %}0123456789abcdefghij{% endfor %}{% endset %}{{ s | length }}",
]


@pytest.mark.parametrize("template", HUGE_STRINGS)
def test_huge_values_are_refused(template: str) -> None:
    assert failure(template) == TOO_LONG


@pytest.mark.parametrize(
    "template",
    [
        "{{ (10 ** 200) ** 200 }}",
        "{{ 12345 | round(-999999999) }}",
        "{{ 1.5 | round(999999999, 'ceil') }}",
        "{{ (0).from_bytes(('x' * 1000000).encode(), 'big') }}",
        "{{ " + " * ".join(["(10 ** 200)"] * 22) + " }}",
        "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    ],
)
def test_huge_numbers_are_refused(template: str) -> None:
    assert failure(template) == TOO_MANY_DIGITS


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) if j < 0 %}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% else %}{% endfor %}x",
        "{% block b %}{% for i in range(1000) %}x{% endfor %}{% endblock %}"
        "{% for i in range(1000) %}{{ self.b() }}{% endfor %}",
        "{% set ns = namespace(n=0) %}{% for i in range(99999) %}{% for j in range(99999) %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{{ ns.n }}",
    ],
)
def test_loops_have_a_budget(template: str) -> None:
    assert failure(template) == TOO_MANY_ITERATIONS


@pytest.mark.parametrize(
    "template",
    [
        # each iteration compares a million characters
        "{% set a = 'x' * 1000000 %}{% set b = 'x' * 1000000 %}"
        "{% for i in range(100000) %}{% if a == b %}{% endif %}{% endfor %}",
        "{% set a = [0] * 1000000 %}{% set b = [0] * 1000000 %}"
        "{% for i in range(100000) %}{% if a == b %}{% endif %}{% endfor %}",
        "{% set a = [0] * 1000000 %}{% for i in range(100000) %}{% if 1 in a %}{% endif %}{% endfor %}",
        "{% set a = [0] * 1000000 %}{% for i in range(100000) %}{% if 1 is in a %}{% endif %}{% endfor %}",
        "{% set a = [0] * 1000000 %}{% for i in range(100000) %}{{ a | max }}{% endfor %}",
        "{% set a = [0] * 1000000 %}{% for i in range(100000) %}{{ a[1:] | length }}{% endfor %}",
        "{% set a = 'x' * 1000000 %}{% for i in range(100000) %}{{ a.count('y') }}{% endfor %}",
        "{% set a = 'x' * 1000000 %}{% for i in range(100000) %}{{ (a ~ '') | length }}{% endfor %}",
        "{{ ([[0] * 999] * 999) | sum(start=[]) | length }}",
        "{{ range(100000) | map('center', 100000) | list }}",
        # calls that fan out: two to the power of forty
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{% for x in range(2) recursive %}{% if loop.depth < 40 %}{{ loop(range(2)) }}{% endif %}{% endfor %}",
        "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}"
        "{% macro r(n) %}{% if n %}{% call m() %}{{ r(n - 1) }}{% endcall %}{% endif %}{% endmacro %}{{ r(40) }}",
        # a large loop body run many times
        "{% for i in range(100000) %}" + "{% if i %}{% endif %}" * 200 + "{% endfor %}",
    ],
)
def test_work_has_a_budget(template: str) -> None:
    assert failure(template) == TOO_MUCH_WORK


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 100001 }}",
        "a{{ 'x' * 100000 }}",
        "{% for i in range(100000) %}0123456789{% endfor %}",
        "{% for i in range(20000) %}{{ 'abcdef' }}{% endfor %}",
    ],
)
def test_a_rendered_value_has_a_length_limit(template: str) -> None:
    assert failure(template) == RESULT_TOO_LONG


def test_values_at_the_limits_are_allowed() -> None:
    assert render("{{ 'x' * 100000 }}") == "x" * 100_000
    assert render("{{ ('x' * 1000000) | length }}") == 1_000_000
    assert render("{{ '%05d' % 42 }}") == "00042"
    assert render("{{ '%*d|%-*s|' % (4, 7, 3, 'a') }}") == "   7|a  |"
    assert render("{{ '{:>6}|{:{}}|{:.2f}'.format('a', 'b', 3, 1.0) }}") == "     a|b  |1.00"
    assert render("{{ 'ab' | center(6) }}|{{ 'a\nb' | indent(2) }}") == "  ab  |a\n  b"
    assert render("{{ range(5) | map('string') | join('-') }}") == "0-1-2-3-4"
    assert render("{{ [[1], [2, 3]] | sum(start=[]) }}") == [1, 2, 3]
    assert render("{{ range(5) | batch(2, 0) | list }}") == [[0, 1], [2, 3], [4, 0]]
    assert render("{{ 'a-b' | replace('-', '+') }}{{ 'x'.zfill(3) }}") == "a+b00x"
    assert render("{{ (2 ** 256) * (2 ** 256) }}") == 2**512
    assert render("{% for i in range(100000) %}{% endfor %}done") == "done"
    assert (
        render("{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}ok")
        == "ok"
    )


def test_unbounded_recursion_is_refused() -> None:
    assert failure("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}") == TOO_DEEP


def test_namespaces_stay_out_of_lists_and_mappings() -> None:
    # A namespace changes after it is put in a list, so the list's size could grow unseen.
    message = (
        "not allowed in a template: a namespace inside a list, mapping or namespace is not allowed"
    )
    assert failure("{% set ns = namespace() %}{{ [ns] }}") == message
    assert failure("{% set ns = namespace() %}{% set other = namespace(a=ns) %}") == message
    assert (
        failure("{% set ns = namespace() %}{% set other = namespace() %}{% set other.a = ns %}")
        == message
    )


def test_templates_cannot_change_lists_or_mappings() -> None:
    assert failure("{% set l = [1] %}{{ l.append(2) }}") == (
        "not allowed in a template: access to attribute 'append' of 'list' object is unsafe."
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
        ("{{ " + "[" * 300 + "]" * 300 + " }}", "nested too deeply"),
        ("{% if 1 %}" * 150 + "{% endif %}" * 150, "nested too deeply"),
        ("{{ " + " + ".join(["1"] * 5000) + " }}", "nested too deeply"),
        ("{{ " + "9" * 5000 + " }}", "a number longer than 4,300 digits"),
    ],
)
def test_templates_that_cannot_compile_name_the_field(template: str, problem: str) -> None:
    with pytest.raises(RecipeError) as caught:
        compile_value(template, where=WHERE, field="params.x")
    assert str(caught.value) == f"r.yaml:3: params.x: template syntax error: {problem}"


@pytest.mark.parametrize(
    "template",
    [
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:{}}'.format(1, 999999999) }}",
        "{{ ('x' * 1000).replace('x', 'y' * 10000) }}",
        "{{ range(100000) | map('center', 100000) | list }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set s %}{% for i in range(100000) %}0123456789abcdefghij{% endfor %}{% endset %}",
        "{% set big = [1.2345678901234567] * 1000000 %}{{ big | string | length }}",
    ],
)
def test_refusals_come_before_the_memory_is_taken(template: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateFailure):
            render(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20


def test_the_templates_of_one_value_share_a_budget() -> None:
    loop = "{% for i in range(60000) %}{% endfor %}"
    assert render([loop, "x"]) == ["", "x"]
    assert failure([loop, {"again": loop}]) == TOO_MANY_ITERATIONS


def test_a_value_holds_at_most_ten_thousand_templates() -> None:
    # YAML aliases repeat a list without copying it: a hundred million templates in eight lines
    value: object = "{{ x }}"
    for _ in range(8):
        value = [value] * 10
    with pytest.raises(RecipeError) as caught:
        compile_value(value, where=WHERE, field="params.x")
    assert str(caught.value) == (
        "r.yaml:3: params.x: more than 10,000 templates in one value are not allowed "
        "(it has 100,000,000, counting each repeat of an alias)"
    )
    assert render([["{{ x }}"] * 100] * 100, x=1) == [[1] * 100] * 100
