"""One grammar (GBNF, as llama.cpp reads it) built from JSON Schemas and hand-written rules."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema

from ..errors import InvalidRequest
from .analysis import GrammarProblem, check, nullable_rules, productive_rules
from .document import MAX_NODES, Document, Path, SchemaProblem, scan
from .ir import EMPTY, Cls, Expr, Lit, Ref, alt, chars, complement, refs, seq
from .json_rules import SHARED
from .render import RuleTable, literal
from .schema import SchemaConverter

MAX_CACHED_SCHEMA_CHARS = 50_000
MAX_GRAMMAR_CHARS = 500_000  # llama.cpp takes ~0.15 s to parse that, for every sampler it makes
_SHARED_EMPTY = nullable_rules(SHARED, {})


class GrammarBuilder:
    """Collects schemas and rules into one grammar. Each schema's rules are named under the name
    it was added with, so two schemas that both define `Item` do not share a rule."""

    def __init__(self) -> None:
        self._table = RuleTable(reserved=set(SHARED))
        self._empty: dict[str, bool] = dict(_SHARED_EMPTY)
        self._nodes_left = MAX_NODES  # shared by all the schemas of this grammar

    def add_schema(self, schema: Any, name: str, param: str) -> str:
        """Add `schema` as rule `name` (and its sub-rules); return the rule's name. Raises
        InvalidRequest, with `param` extended by the place in the schema where it can tell."""
        try:
            return self._add_schema(schema, name)
        except SchemaProblem as exc:
            if exc.names_field:
                where = param + _path_text(exc.path, limit=None)
                raise InvalidRequest(f"{where}: {exc.message}", param=where) from exc
            at = f" (at {_path_text(exc.path)[1:]})" if exc.path else ""
            raise InvalidRequest(f"{param}: {exc.message}{at}", param=param) from exc
        except GrammarProblem as exc:
            raise InvalidRequest(f"{param}: {exc}", param=param) from exc
        except RecursionError as exc:  # a last guard: every known cause is capped before this
            raise InvalidRequest(f"{param}: the schema is too deeply nested", param=param) from exc

    def _add_schema(self, schema: Any, name: str) -> str:
        if not isinstance(schema, (dict, bool)):
            raise SchemaProblem("a JSON Schema must be an object (or a boolean)")
        self._nodes_left -= scan(schema, self._nodes_left)
        _check_schema(schema)
        rule = self._table.fresh(name)
        exprs = SchemaConverter(Document(schema), rule, self._table.fresh).convert()
        if not productive_rules(exprs)[rule]:
            raise SchemaProblem("no value satisfies the schema")
        self._define(exprs)
        size = sum(len(body) for body in self._table.bodies.values())
        if size > MAX_GRAMMAR_CHARS:
            raise SchemaProblem(f"the schema is too large: its grammar would exceed {MAX_GRAMMAR_CHARS} characters")
        return rule

    def _define(self, exprs: dict[str, Expr]) -> None:
        self._empty.update(check(exprs, self._empty))
        for name, expr in exprs.items():
            self._table.define(name, expr)
        self._add_shared([ref for expr in exprs.values() for ref in refs(expr)])

    def _add_shared(self, names: list[str]) -> None:
        while names:
            name = names.pop()
            if name in SHARED and name not in self._table.bodies:
                self._table.define(name, SHARED[name])
                names.extend(refs(SHARED[name]))

    def add_rule(self, name: str, body: str) -> None:
        """A hand-written rule (GBNF text); it may use the rules the schemas added."""
        self._table.set_text(name, body)

    literal = staticmethod(literal)

    def text_without(self, name: str, tag: str) -> str:
        """Add rule `name`: any text (newlines too, possibly empty) that never contains `tag`.

        One rule per state of the Knuth-Morris-Pratt automaton of `tag` (how much of the tag the
        text ends with); every alternative takes one character and moves on in tail position, so
        llama.cpp's grammar stacks stay the same size however long the text grows. Every state
        may end the text, including those holding a proper prefix of the tag."""
        if not tag:
            raise ValueError("the tag must not be empty")
        first = self._table.fresh(name)
        names = [first] + [self._table.fresh(f"{first}-{i}") for i in range(1, len(tag))]
        step = _kmp_steps(tag)
        exprs = {}
        for state, rule in enumerate(names):
            # Characters are grouped by the state they lead to, and all that lead back to the
            # start form one class: few alternatives, hence few grammar stacks per character,
            # which is what llama.cpp's sampling time grows with.
            targets: dict[int, list[str]] = {}
            for c in sorted(set(tag)):
                targets.setdefault(step(state, c), []).append(c)
            moves = [seq(_chars(group), Ref(names[target])) for target, group in targets.items()
                     if 0 < target < len(tag)]
            restart = complement(chars("".join(c for t, group in targets.items() if t != 0 for c in group)))
            exprs[rule] = alt(EMPTY, *moves, seq(Cls(restart), Ref(first)))
        self._define(exprs)
        return first

    def build(self) -> str:
        return "".join(f"{name} ::= {body}\n" for name, body in self._table.bodies.items())


def _chars(group: list[str]) -> Expr:
    return Lit(group[0]) if len(group) == 1 else Cls(chars("".join(group)))


def _kmp_steps(tag: str):
    """step(state, c): how much of the tag the text ends with after c, having ended with `state`."""
    fail = [0] * len(tag)
    k = 0
    for i in range(1, len(tag)):
        while k and tag[i] != tag[k]:
            k = fail[k - 1]
        if tag[i] == tag[k]:
            k += 1
        fail[i] = k

    def step(state: int, c: str) -> int:
        while state and tag[state] != c:
            state = fail[state - 1]
        return state + 1 if tag[state] == c else 0

    return step


def _check_schema(schema: Any) -> None:
    # Clients send the same tools with every request, and the check is most of the time spent
    # here (~1 ms a tool): schemas that passed are remembered by their JSON text.
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not plain JSON data: checked as it is
        text = None
    if text is not None and len(text) <= MAX_CACHED_SCHEMA_CHARS:
        _check_schema_text(text)
    else:
        _validate(schema)


@functools.lru_cache(maxsize=256)  # an exception is not cached: invalid schemas are checked again
def _check_schema_text(text: str) -> None:
    _validate(json.loads(text))


def _validate(schema: Any) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        # A bad regex is pointed at; other errors name the schema as a whole, as clients expect.
        bad_regex = exc.validator == "format"
        raise SchemaProblem(f"invalid JSON Schema: {exc.message}", tuple(exc.path), names_field=bad_regex) from exc


def _path_text(path: Path, limit: int | None = 12) -> str:
    shown = path if limit is None else path[:limit]
    text = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in shown)
    return text if len(shown) == len(path) else text + "..."
