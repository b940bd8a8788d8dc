"""JSON Schema to grammar expressions: one rule for the schema, and one for each named part.

Anything a grammar cannot hold, or that this converter does not know (`not`, `if`/`then`/`else`,
`$dynamicRef`, unknown keywords...), is left out, which widens what the grammar allows: the model
is always held to a superset of the schema, and the request is refused only when the schema is
malformed, unsatisfiable, or too large or deep to convert safely.

Python recursion follows the schema's nesting (capped by document.MAX_DEPTH and MAX_VISIT_DEPTH);
`$ref` targets are converted from a queue, each once, so reference chains never deepen it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .document import Document, Path, SchemaProblem
from .ir import EMPTY, NEVER, Expr, Lit, Ref, alt, rep, seq
from .json_rules import CHAR, FORMATS, MAX_INTEGRAL_DIGITS, QUOTE, SPACE, integer_range, json_text
from .merge import TYPES, flatten, merge
from .pattern import InvalidPattern, pattern_body
from .shapes import array_body, object_body

MAX_VISIT_DEPTH = 64
MAX_WORK = 100_000  # subschemas visited; merging and alternatives may visit a part many times

KEYWORDS_OF = {
    "object": {"properties", "required", "additionalProperties", "patternProperties", "minProperties",
               "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas", "unevaluatedProperties"},
    "array": {"items", "prefixItems", "minItems", "maxItems", "contains", "minContains", "maxContains",
              "uniqueItems", "unevaluatedItems"},
    "string": {"minLength", "maxLength", "pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
}
CONSTRAINTS = frozenset({"type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "nullable"}).union(
    *KEYWORDS_OF.values())
ANY = Ref("json-value")
NULL = seq(Lit("null"), SPACE)


class SchemaConverter:
    def __init__(self, doc: Document, name: str, fresh: Callable[[str], str]) -> None:
        self.doc = doc
        self.name = name
        self.fresh = fresh
        self.rules: dict[str, Expr] = {}
        self._ref_rules: dict[Path, str] = {(): name}
        self._queue: list[tuple[str, Path, Any]] = []
        self._work = 0
        self._ranges: dict[tuple[int, int], Ref] = {}  # integer bounds -> the rule spelling them

    def convert(self) -> dict[str, Expr]:
        self.rules[self.name] = EMPTY  # holds the first place in the grammar
        self.rules[self.name] = self.visit(self.doc.root, (), self.name, 0)
        while self._queue:
            rule, path, target = self._queue.pop()
            self.rules[rule] = self.visit(target, path, rule, 0)
        return self.rules

    def tick(self, path: Path) -> None:
        self._work += 1
        if self._work > MAX_WORK:
            raise SchemaProblem("the schema is too large to turn into a grammar", path)

    def named(self, expr: Expr, hint: str) -> Expr:
        """expr, or a reference to a new rule holding it when it is not tiny."""
        if _size(expr, 6) <= 5:
            return expr
        return self.rule(expr, hint)

    def rule(self, expr: Expr, hint: str) -> Ref:
        name = self.fresh(hint)
        self.rules[name] = expr
        return Ref(name)

    # --- dispatch ---------------------------------------------------------------------------

    def visit(self, schema: Any, path: Path, hint: str, depth: int) -> Expr:
        self.tick(path)
        if depth > MAX_VISIT_DEPTH:
            raise SchemaProblem(f"the schema nests more than {MAX_VISIT_DEPTH} levels deep (counting the "
                                "subschemas that allOf, anyOf and $ref with other keywords bring in)", path)
        if schema is True:
            return ANY
        if schema is False:
            return NEVER
        if not isinstance(schema, dict):
            raise SchemaProblem("a schema must be an object or a boolean", path)
        keys = schema.keys() & CONSTRAINTS
        if keys == {"$ref"} and isinstance(schema["$ref"], str):
            return self.ref(schema["$ref"], path)
        if "$ref" in keys or "allOf" in keys:
            parts = flatten(schema, path, self.doc.resolve, lambda: self.tick(path))
            merged = None if parts is None else merge(parts)
            return NEVER if merged is None else self.visit(merged, path, hint, depth + 1)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return self.alternatives(schema, key, path, hint, depth)
        body = self.values(schema, path, hint, depth)
        return alt(body, NULL) if schema.get("nullable") is True else body

    def values(self, schema: dict, path: Path, hint: str, depth: int) -> Expr:
        if "const" in schema:
            return self.constants([schema["const"]], schema)
        if isinstance(schema.get("enum"), list):
            return self.constants(schema["enum"], schema)
        body = alt(*(self.typed(t, schema, path, hint, depth) for t in _types(schema)))
        if body == NEVER and "type" not in schema:
            # Keywords of a type apply only to values of that type: held to its type when the
            # keywords name one (what the schema means), but satisfiable by any other value.
            return ANY
        return body

    def ref(self, ref: str, path: Path) -> Expr:
        """A rule for the target, converted later; chains of bare $refs lead to the last one."""
        target_path, target = self.doc.resolve(ref, path)
        seen = {target_path}
        while isinstance(target, dict) and target.keys() & CONSTRAINTS == {"$ref"} and isinstance(target["$ref"], str):
            self.tick(path)
            target_path, target = self.doc.resolve(target["$ref"], target_path)
            if target_path in seen:
                raise SchemaProblem(f"$ref '{ref}' leads to a cycle of references", path)
            seen.add(target_path)
        rule = self._ref_rules.get(target_path)
        if rule is None:
            last = str(target_path[-1]) if target_path else "root"
            rule = self._ref_rules[target_path] = self.fresh(f"{self.name}-{last}")
            self._queue.append((rule, target_path, target))
        return Ref(rule)

    def alternatives(self, schema: dict, key: str, path: Path, hint: str, depth: int) -> Expr:
        rest = {k: v for k, v in schema.items() if k != key}
        shared = bool(rest.keys() & CONSTRAINTS)  # keywords beside anyOf apply to every option
        options = []
        for i, option in enumerate(schema[key]):
            sub = {"allOf": [rest, option]} if shared else option
            expr = self.visit(sub, (*path, key, i), f"{hint}-{i}", depth + 1)
            options.append(self.named(expr, f"{hint}-{i}"))
        return alt(*options)

    def constants(self, values: list, schema: dict) -> Expr:
        allowed = _types(schema) if "type" in schema else None
        return alt(*(const_expr(v) for v in values if allowed is None or _json_type(v) & set(allowed)))

    def typed(self, kind: str, schema: dict, path: Path, hint: str, depth: int) -> Expr:
        if kind == "object":
            return object_body(self, schema, path, hint, depth)
        if kind == "array":
            return array_body(self, schema, path, hint, depth)
        if kind == "string":
            return self.string(schema, path, hint)
        if kind in ("number", "integer"):
            return self.number(schema, kind == "integer")
        if kind == "boolean":
            return seq(alt(Lit("true"), Lit("false")), SPACE)
        return NULL if kind == "null" else ANY

    def number(self, schema: dict, integer: bool) -> Expr:
        """A number within the schema's bounds: none when nothing is; exactly the integers between
        two bounds (one rule per range, shared); else a superset that keeps only the sign."""
        low = _bound(schema, "minimum", "exclusiveMinimum", max)
        high = _bound(schema, "maximum", "exclusiveMaximum", min)
        if numbers_impossible(low, high):
            return NEVER
        bounds = integer_bounds(low, high) if integer else None
        if bounds is None:
            return Ref(_number_rule(schema, integer))
        if bounds[1] < bounds[0]:
            return NEVER
        if bounds not in self._ranges:
            self._ranges[bounds] = self.rule(seq(integer_range(*bounds), SPACE), "integer-range")
        return self._ranges[bounds]

    def string(self, schema: dict, path: Path, hint: str) -> Expr:
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                body = pattern_body(pattern)
            except InvalidPattern as exc:
                raise SchemaProblem(str(exc), (*path, "pattern"), names_field=True) from exc
            if body is not None:
                return seq(QUOTE, self.named(body, f"{hint}-pattern"), QUOTE, SPACE)
        if schema.get("format") in FORMATS:
            return seq(QUOTE, Ref(FORMATS[schema["format"]]), QUOTE, SPACE)
        low, high = _count(schema.get("minLength"), 0), _count(schema.get("maxLength"), None)
        if low == 0 and high is None:
            return Ref("json-string")
        return seq(QUOTE, rep(CHAR, low, high), QUOTE, SPACE)


def const_expr(value: Any) -> Expr:
    """Exactly this JSON value, with the whitespace the rest of the grammar allows."""
    comma = seq(Lit(","), SPACE)
    if isinstance(value, dict):
        members = [seq(Lit(json_text(str(k))), SPACE, Lit(":"), SPACE, const_expr(v)) for k, v in value.items()]
        return seq(Lit("{"), SPACE, *_joined(members, comma), Lit("}"), SPACE)
    if isinstance(value, list):
        return seq(Lit("["), SPACE, *_joined([const_expr(v) for v in value], comma), Lit("]"), SPACE)
    return seq(Lit(json_text(value)), SPACE)


def _joined(items: list[Expr], separator: Expr) -> list[Expr]:
    out: list[Expr] = []
    for i, item in enumerate(items):
        out += [separator, item] if i else [item]
    return out


def _types(schema: dict) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        kinds = [declared]
    elif isinstance(declared, list):
        kinds = [t for t in TYPES if t in declared]
    else:
        kinds = [t for t, words in KEYWORDS_OF.items() if words & schema.keys()] or ["any"]
    if "number" in kinds and "integer" in kinds:
        kinds.remove("integer")
    return kinds


def _json_type(value: Any) -> set[str]:
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    return {str: {"string"}, dict: {"object"}, list: {"array"}}.get(type(value), {"null"})


def _count(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


Bound = tuple[float, bool] | None  # (value, exclusive?), or no bound


def integer_bounds(low: Bound, high: Bound) -> tuple[int, int] | None:
    """The smallest and largest integer the bounds allow, when there are both and they fit the
    digits a JSON integer may have here (first > last: none does)."""
    if low is None or high is None:
        return None
    first = math.floor(low[0]) + 1 if low[1] else math.ceil(low[0])
    last = math.ceil(high[0]) - 1 if high[1] else math.floor(high[0])
    if last >= first and max(abs(first), abs(last)) >= 10 ** MAX_INTEGRAL_DIGITS:
        return None
    return first, last


def numbers_impossible(low: Bound, high: Bound) -> bool:
    return low is not None and high is not None and (low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1])))


def _bound(schema: dict, inclusive: str, exclusive: str, pick: Callable) -> Bound:
    """The tighter of a bound's two keywords, as (value, exclusive?); at a tie the exclusive one."""
    found = [(schema[key], key == exclusive) for key in (inclusive, exclusive) if _is_number(schema.get(key))]
    if not found:
        return None
    value = pick(v for v, _ in found)
    return value, any(strict for v, strict in found if v == value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and math.isfinite(value)


def _number_rule(schema: dict, integer: bool) -> str:
    low, strict = (schema[key] if _is_number(schema.get(key)) else None for key in ("minimum", "exclusiveMinimum"))
    if integer and ((low is not None and low > 0) or (strict is not None and strict >= 0)):
        return "json-integer-positive"
    if (low is not None and low >= 0) or (strict is not None and strict >= (-1 if integer else 0)):
        return "json-integer-unsigned" if integer else "json-number-unsigned"
    return "json-integer" if integer else "json-number"


def _size(expr: Expr, limit: int) -> int:
    """Nodes in expr, counting no further than `limit`."""
    stack, n = [expr], 0
    while stack and n < limit:
        node = stack.pop()
        n += 1
        items = getattr(node, "items", None)
        if isinstance(items, tuple):
            stack.extend(items)
        elif hasattr(node, "item"):
            stack.append(node.item)
    return n
