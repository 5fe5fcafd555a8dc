"""The code samples on a page: the example payloads they send, the URL they call and the auth they use."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from engine.docimport.page import Page

__all__ = ["Base64Of", "CodeSample", "Unreadable", "read_samples"]

# Pages print code with its line numbers glued on (" 1import requests", "11    \"image\": ...").
_LINE_NUMBER = re.compile(r"^\s?\d{1,3}(?=\D|$)")
# Python ("data = {") and JavaScript ("const data = {") samples.
_JS_DECLARE = r"(?:(?:const|let|var)\s+)?"
_DICT_OPEN = re.compile(rf"^{_JS_DECLARE}(?:data|payload|inputs|body|json_data)\s*=\s*\{{\s*$")
_CALL_OPEN = re.compile(r"^(?:\w+\s*=\s*)?\w+\.(?:run|submit_async|submit)\(\s*$")
_DICT_ITEM = re.compile(r"""^(?P<q>["'])(?P<key>[^"']+)(?P=q)\s*:\s*(?P<expr>.+)$""")
_KWARG = re.compile(r"^(?P<key>[A-Za-z_]\w*)\s*=\s*(?P<expr>.+)$")
_SLUG_ARG = re.compile(r"""^(?P<q>["'])(?P<slug>[\w.\-]+)(?P=q)\s*,?\s*$""")
# Anywhere in the line: a page stored on one line may glue it to a line number ("4url = …").
_URL = re.compile(rf"""(?<![A-Za-z_.]){_JS_DECLARE}url\s*=\s*["'](?P<url>https?://[^"']+)["']""")
# The SDK called on one line: `client.submit_async("esrgan", **payload)`.
_CALL_SLUG = re.compile(
    r"""\.(?:run|submit_async|submit)\(\s*(?P<q>["'])(?P<slug>[\w.\-]+)(?P=q)"""
)
# A string the sample means to be base64-encoded: "toB64('/input.jpeg')" (an axios sample).
_B64_CALL = re.compile(r"^[\w.]*(?:b64|base64)\w*\((?P<arg>.*)\)$", re.IGNORECASE)
_BEARER = re.compile(r"Authorization['\"]?\s*:\s*f?['\"]Bearer", re.IGNORECASE)
_API_KEY_HEADER = re.compile(r"x-api-key", re.IGNORECASE)
_CLOSERS = ("}", ")")


@dataclass(frozen=True, slots=True)
class Base64Of:
    """A value the sample computes by base64-encoding an image (``image_url_to_base64(url)``)."""

    source: object


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A value the sample computes in a way we do not evaluate (a variable, an expression)."""

    text: str


@dataclass
class CodeSample:
    """What the page's code samples show; ``payload`` keeps the order the sample writes keys in."""

    payload: dict[str, object] = field(default_factory=dict)
    payload_lines: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[object]] = field(default_factory=dict)
    url: str | None = None
    slug: str | None = None
    bearer: bool = False
    api_key_header: bool = False
    cut_short: int | None = None


def read_samples(page: Page, stop: int | None) -> CodeSample:
    """Read every code sample before line ``stop`` (where the parameter reference begins)."""
    sample = CodeSample()
    number, end = 1, (stop or len(page.lines) + 1)
    while number < end:
        raw = page.lines[number - 1]
        code = _LINE_NUMBER.sub("", raw, count=1).strip()
        if _BEARER.search(code):
            sample.bearer = True
        if _API_KEY_HEADER.search(code) and "x-api-key" in code.lower():
            sample.api_key_header = True
        url = _URL.search(code)
        if url and sample.url is None:
            sample.url = url.group("url")
        call = _CALL_SLUG.search(code)
        if call and sample.slug is None:
            sample.slug = call.group("slug")
        if _DICT_OPEN.match(code) or _CALL_OPEN.match(code):
            number = _read_block(page, number + 1, end, sample, kwargs=code.endswith("("))
            continue
        number += 1
    return sample


def _read_block(page: Page, start: int, end: int, sample: CodeSample, *, kwargs: bool) -> int:
    first_block = not sample.payload
    for number in range(start, end):
        code = _LINE_NUMBER.sub("", page.lines[number - 1], count=1).strip()
        if code.startswith(_CLOSERS):
            return number + 1
        if not code or code.startswith("#"):
            continue
        if kwargs and sample.slug is None and (slug := _SLUG_ARG.match(code)):
            sample.slug = slug.group("slug")
            continue
        item = (_KWARG if kwargs else _DICT_ITEM).match(code)
        if item is None:
            continue
        key, value = item.group("key"), _evaluate(item.group("expr"))
        sample.examples.setdefault(key, []).append(value)
        if first_block or key not in sample.payload:
            sample.payload.setdefault(key, value)
            sample.payload_lines.setdefault(key, number)
    sample.cut_short = start
    return end


def _evaluate(expr: str) -> object:
    # The line may end in a comma and a comment; inside brackets, with a newline before the closing
    # one, Python's own parser takes care of both.
    try:
        tree = ast.parse(f"[{expr}\n]", mode="eval")
        if not isinstance(tree.body, ast.List) or len(tree.body.elts) != 1:
            return Unreadable(expr.rstrip(","))
        return _value(tree.body.elts[0])
    # What a page prints need not be sane Python: a list as a dict key, a thousand nested minus
    # signs, a 5,000-digit literal. None of that is evidence.
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return Unreadable(expr.rstrip(","))


def _value(node: ast.expr) -> object:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) and (call := _B64_CALL.match(node.value)):
            return Base64Of(call.group("arg").strip("'\" "))
        return node.value
    if isinstance(node, ast.Name):
        names: dict[str, object] = {
            "true": True,
            "True": True,
            "false": False,
            "False": False,
            "null": None,
            "None": None,
        }
        return names.get(node.id, Unreadable(node.id))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {
            _value(k) if k is not None else None: _value(v)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        if "base64" in name.lower():
            return Base64Of(_value(node.args[0]) if node.args else None)
    return Unreadable(ast.unparse(node))
