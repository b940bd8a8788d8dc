"""Objects and arrays: members in order, separated by commas, some of them optional.

Object members come in the order the schema declares them, required and optional interleaved (the
order a model sees in the prompt), then any additional members. Chains of optional parts are
rules that each reference the next, so the grammar grows linearly with the number of members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .document import Path
from .ir import EMPTY, NEVER, Expr, Lit, Ref, alt, opt, rep, seq
from .json_rules import SPACE, json_text

if TYPE_CHECKING:
    from .schema import SchemaConverter

COMMA = seq(Lit(","), SPACE)
KEY = Ref("json-string")


def object_body(conv: SchemaConverter, schema: dict, path: Path, hint: str, depth: int) -> Expr:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = list(dict.fromkeys(r for r in schema.get("required", ()) if isinstance(r, str)))
    extra_schema = _additional(schema, props)
    members: list[tuple[Expr, bool]] = []
    for name, sub in props.items():
        value = conv.visit(sub, (*path, "properties", name), f"{hint}-{name}", depth + 1)
        if value == NEVER:  # a property whose schema is `false` cannot be present
            if name in required:
                return NEVER
            continue
        members.append((_member(name, conv.named(value, f"{hint}-{name}")), name in required))
    extra = None
    if extra_schema is not False:
        value = conv.visit(extra_schema, (*path, "additionalProperties"), f"{hint}-additional", depth + 1)
        extra = conv.named(value, f"{hint}-additional") if value != NEVER else None
    for name in required:
        if name not in props:  # required but undeclared: an additional property that must be there
            if extra is None:
                return NEVER
            members.append((_member(name, extra), True))
    extra_member = None if extra is None else seq(KEY, Lit(":"), SPACE, extra)
    return seq(Lit("{"), SPACE, _members(conv, members, extra_member, hint), Lit("}"), SPACE)


def _additional(schema: dict, props: dict) -> Any:
    """The schema of additional properties; False when there may be none. Absent, a bare object
    takes any members, and an object with declared properties takes no others."""
    extra = schema.get("additionalProperties")
    if isinstance(extra, (bool, dict)):
        return extra
    if schema.get("patternProperties") or not props:
        return True
    return False


def _member(name: str, value: Expr) -> Expr:
    return seq(Lit(json_text(name)), SPACE, Lit(":"), SPACE, value)


def _members(conv: SchemaConverter, members: list[tuple[Expr, bool]], extra: Expr | None, hint: str) -> Expr:
    more_extra = rep(seq(COMMA, extra), 0, None) if extra is not None else EMPTY
    first = next((i for i, (_, required) in enumerate(members) if required), None)
    if first is not None:
        parts = [opt(seq(member, COMMA)) for member, _ in members[:first]]
        parts.append(members[first][0])
        for member, required in members[first + 1:]:
            parts.append(seq(COMMA, member) if required else opt(seq(COMMA, member)))
        return seq(*parts, more_extra)
    # All optional: one alternative per member that comes first, each followed by the chain of
    # what may come after it.
    tails: list[Expr] = [more_extra]
    for i in range(len(members) - 1, 0, -1):
        tail = seq(opt(seq(COMMA, members[i][0])), tails[-1])
        tails.append(conv.rule(tail, f"{hint}-after{i}") if i < len(members) - 1 else tail)
    tails.reverse()
    choices = [seq(member, tails[i]) for i, (member, _) in enumerate(members)]
    if extra is not None:
        choices.append(seq(extra, more_extra))
    return opt(alt(*choices))


def array_body(conv: SchemaConverter, schema: dict, path: Path, hint: str, depth: int) -> Expr:
    low = _count(schema.get("minItems"), 0)
    high = _count(schema.get("maxItems"), None)
    prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
    items = schema.get("items", True)
    if high is not None and high < len(prefix):
        prefix, items = prefix[:high], False
    heads: list[Expr] = []
    for i, sub in enumerate(prefix):
        value = conv.visit(sub, (*path, "prefixItems", i), f"{hint}-{i}", depth + 1)
        if value == NEVER:  # no array reaches past this position
            items = False
            break
        heads.append(conv.named(value, f"{hint}-{i}"))
    item = NEVER
    if items is not False:
        item = conv.visit(items, (*path, "items"), f"{hint}-item", depth + 1)
        item = conv.named(item, f"{hint}-item") if item != NEVER else NEVER
    elements = _elements(conv, heads, item, low, high, hint)
    return seq(Lit("["), SPACE, elements, Lit("]"), SPACE)


def _elements(conv: SchemaConverter, heads: list[Expr], item: Expr, low: int, high: int | None,
              hint: str) -> Expr:
    n = len(heads)
    if item == NEVER:
        tail = EMPTY if low <= n else NEVER
    else:
        tail = rep(seq(COMMA, item), max(low - n, 0), None if high is None else high - n)
    if not heads:
        if item == NEVER or high == 0:
            return EMPTY if low == 0 else NEVER
        more = rep(seq(COMMA, item), max(low - 1, 0), None if high is None else high - 1)
        first = seq(item, more)
    else:
        rest = tail
        for i in range(n - 1, 0, -1):
            step = seq(COMMA, heads[i], rest)
            rest = conv.named(step if i < low else opt(step), f"{hint}-from{i}")
        first = seq(heads[0], rest)
    return first if low > 0 else opt(first)


def _count(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
