"""A small, safe parser for KEDA's ``scalingModifiers.formula`` arithmetic.

Numbers, trigger names, ``+ - * /``, unary minus and parentheses; nothing else
(no ``eval``, no calls, no attribute access). The result is a function of the
trigger values, so the model evaluates it on every HPA sync.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

Formula = Callable[[Mapping[str, float]], float]

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_][A-Za-z0-9_-]*)|(.))")


class FormulaError(ValueError):
    """The formula uses something the parser does not know; the message says what."""


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    names: Collection[str]
    pos: int = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def expr(self) -> Formula:
        left = self.term()
        while self.peek() in {("op", "+"), ("op", "-")}:
            op = self.take()[1]
            right = self.term()
            left = _add(left, right) if op == "+" else _sub(left, right)
        return left

    def term(self) -> Formula:
        left = self.factor()
        while self.peek() in {("op", "*"), ("op", "/")}:
            op = self.take()[1]
            right = self.factor()
            left = _mul(left, right) if op == "*" else _div(left, right)
        return left

    def factor(self) -> Formula:
        kind, text = self.take()
        if (kind, text) == ("op", "-"):
            inner = self.factor()
            return lambda v: -inner(v)
        if (kind, text) == ("op", "+"):
            return self.factor()
        if kind == "num":
            number = float(text)
            return lambda v: number
        if kind == "name":
            if text not in self.names:
                known = ", ".join(sorted(self.names)) or "none"
                raise FormulaError(f"{text!r} is not a trigger name (known: {known})")
            return lambda v: v[text]
        if (kind, text) == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise FormulaError("a '(' is not closed")
            return inner
        raise FormulaError(f"unexpected {text or 'end of formula'!r}")


def _add(a: Formula, b: Formula) -> Formula:
    return lambda v: a(v) + b(v)


def _sub(a: Formula, b: Formula) -> Formula:
    return lambda v: a(v) - b(v)


def _mul(a: Formula, b: Formula) -> Formula:
    return lambda v: a(v) * b(v)


def _div(a: Formula, b: Formula) -> Formula:
    def divide(v: Mapping[str, float]) -> float:
        top, bottom = a(v), b(v)
        if bottom == 0:
            return 0.0 if top == 0 else math.copysign(math.inf, top)
        return top / bottom

    return divide


def parse_formula(text: str, names: Collection[str]) -> Formula:
    """The formula as a function of the trigger values; FormulaError on anything else."""
    tokens: list[tuple[str, str]] = []
    for number, name, other in _TOKEN.findall(text):
        if number:
            tokens.append(("num", number))
        elif name:
            tokens.append(("name", name))
        elif other.strip():
            if other not in "+-*/()":
                raise FormulaError(f"{other!r} is not allowed (only + - * / and parentheses)")
            tokens.append(("op", other))
    if not tokens:
        raise FormulaError("the formula is empty")
    parser = _Parser(tokens, names)
    result = parser.expr()
    if parser.pos != len(tokens):
        raise FormulaError(f"unexpected {parser.peek()[1]!r}")
    return result
