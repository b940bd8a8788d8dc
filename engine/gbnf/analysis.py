"""Checks a set of rules before llama.cpp sees them.

llama.cpp refuses left-recursive grammars, but finds them with a depth-first search that does not
remember rules it already searched from an inner call: a schema whose alternatives reference the
same definitions through many paths (a -> b|c, b -> d|e, c -> d|e, ...) makes that search take
exponential time while the request waits. So the left-reference graph is checked here, without
recursion: a cycle is a left recursion, and the number of paths the search would walk is counted.
"""

from __future__ import annotations

from collections import deque

from .ir import Alt, Cls, Expr, Lit, Ref, Rep, Seq, first_refs, nullable

MAX_LEFT_PATHS = 100_000


class GrammarProblem(Exception):
    """Rules that llama.cpp would refuse, or would take too long to accept."""


def nullable_rules(exprs: dict[str, Expr], known: dict[str, bool]) -> dict[str, bool]:
    """Which rules can match the empty string (a fixed point; `known` covers other rules)."""
    result = dict(known)
    result.update({name: False for name in exprs})
    changed = True
    while changed:
        changed = False
        for name, expr in exprs.items():
            if not result[name] and nullable(expr, result):
                result[name] = changed = True
    return result


def productive(expr: Expr, rules: dict[str, bool]) -> bool:
    """Whether expr matches some finite text, given which rules do."""
    if isinstance(expr, (Lit, Cls)):
        return True
    if isinstance(expr, Ref):
        return rules.get(expr.name, True)  # rules from elsewhere (shared ones) all do
    if isinstance(expr, Seq):
        return all(productive(item, rules) for item in expr.items)
    if isinstance(expr, Alt):
        return any(productive(item, rules) for item in expr.items)
    return expr.min == 0 or productive(expr.item, rules)


def productive_rules(exprs: dict[str, Expr]) -> dict[str, bool]:
    """Which rules match some finite text (a fixed point): a schema whose every value would have
    to nest forever, or reach a `false`, gives a grammar in which the model could never end."""
    result = {name: False for name in exprs}
    changed = True
    while changed:
        changed = False
        for name, expr in exprs.items():
            if not result[name] and productive(expr, result):
                result[name] = changed = True
    return result


def check(exprs: dict[str, Expr], known: dict[str, bool]) -> dict[str, bool]:
    """Raise GrammarProblem for left recursion or an over-long left-recursion search; returns
    the nullability of every rule."""
    empty = nullable_rules(exprs, known)
    for name, expr in exprs.items():
        _check_repetitions(expr, name, empty)
    edges = {name: [ref for ref in first_refs(expr, empty) if ref in exprs] for name, expr in exprs.items()}
    order = _topological(edges)
    paths: dict[str, int] = {}
    for name in reversed(order):
        paths[name] = sum(1 + paths[ref] for ref in edges[name])
        if paths[name] > MAX_LEFT_PATHS:
            raise GrammarProblem("the schema's alternatives and references combine in too many ways")
    return empty


def _topological(edges: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm: callers before callees; a rule left on a cycle is left-recursive."""
    incoming = {name: 0 for name in edges}
    for refs in edges.values():
        for ref in refs:
            incoming[ref] += 1
    ready = deque(name for name, n in incoming.items() if n == 0)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for ref in edges[name]:
            incoming[ref] -= 1
            if incoming[ref] == 0:
                ready.append(ref)
    if len(order) < len(edges):
        stuck = next(name for name, n in incoming.items() if n > 0)
        raise GrammarProblem(f"the schema refers to itself without any JSON in between (at '{stuck}')")
    return order


def _check_repetitions(expr: Expr, name: str, empty: dict[str, bool]) -> None:
    # An unbounded repetition of something that may be empty is left-recursive once expanded.
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Rep):
            if node.max is None and nullable(node.item, empty):
                raise GrammarProblem(f"the schema repeats something that may be empty (at '{name}')")
            stack.append(node.item)
        elif isinstance(node, (Seq, Alt)):
            stack.extend(node.items)
