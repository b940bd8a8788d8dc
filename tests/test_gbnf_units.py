"""engine/gbnf's parts on their own, in pure Python (no llama.cpp)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidRequest
from engine.gbnf import GrammarBuilder
from engine.gbnf.analysis import GrammarProblem, check
from engine.gbnf.document import Document, SchemaProblem
from engine.gbnf.ir import EMPTY, NEVER, Lit, Ref, Rep, alt, chars, opt, rep, seq
from engine.gbnf.merge import merge
from engine.gbnf.render import REPEAT_BUDGET, REPEAT_CAP, RuleTable, char_class, literal


def rules_of(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.splitlines())


def render(expr) -> dict[str, str]:
    table = RuleTable()
    table.define("r", expr)
    return table.bodies


# --- text -----------------------------------------------------------------------------------------

def test_literals_escape_what_gbnf_and_c_strings_need_and_keep_the_rest_raw():
    assert literal('a"b\\c\n\r\t') == r'"a\"b\\c\n\r\t"'
    assert literal("\x00\x1f\x7f") == r'"\x00\x1F\x7F"'
    assert literal("😀é") == '"😀é"'
    assert literal("\ud83d") == r'"\uD83D"'  # a lone surrogate cannot be written as UTF-8


def test_character_classes():
    assert char_class(chars("abc")) == "[a-c]"
    assert char_class(chars("ab")) == "[ab]"
    assert char_class(chars("]-^\\")) == r"[\-\\-\x5E]"  # '-', then '\' to '^'
    assert char_class(chars("]a")) == r"[\]a]"
    assert char_class(((0, 0x60), (0x62, 0x10FFFF))) == "[^a]"
    assert char_class(((0, 0x10FFFF),)) == "."
    assert char_class(((0x1F600, 0x1F602),)) == r"[\U0001F600-\U0001F602]"


# --- repetitions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, text", [
    (0, 1, "| x"), (0, None, "x*"), (1, None, "x+"), (3, 3, "x{3}"), (2, None, "x{2,}"), (0, REPEAT_CAP, "x{0,2000}"),
    (0, REPEAT_CAP + 1, "x*"), (5, 524288, "x{5,}"), (5000, 6000, "x{2000,}"), (5000, 5000, "x{2000,}"),
])
def test_bounds_above_the_cap_become_a_superset(low, high, text):
    assert render(Rep(Ref("x"), low, high))["r"] == text


def test_bounds_past_the_budget_are_dropped():
    table = RuleTable()
    spent = REPEAT_BUDGET // REPEAT_CAP
    for i in range(spent):
        table.define(f"r{i}", Rep(Ref("x"), 0, REPEAT_CAP))
    table.define("late", Rep(Ref("x"), 0, 10))
    table.define("late-min", Rep(Ref("x"), 7, 10))
    assert table.bodies["r0"] == "x{0,2000}" and table.bodies["late"] == "x*" and table.bodies["late-min"] == "x+"


def test_only_literals_classes_and_names_are_repeated():
    bodies = render(seq(Lit("["), Rep(seq(Lit(","), Ref("v")), 0, 5), Rep(alt(Lit("a"), Ref("b")), 1, None)))
    assert bodies["r"] == '"[" r-part{0,5} r-part-2+'
    assert bodies["r-part"] == '"," v' and bodies["r-part-2"] == '"a" | b'


def test_parentheses_nest_only_so_deep():
    expr = Lit("x")
    for i in range(30):
        expr = seq(Lit(f"{i}"), alt(expr, Lit("y")))
    bodies = render(expr)
    assert max(body.count("(") for body in bodies.values()) <= 8


def test_an_unbounded_repetition_of_what_may_be_empty_is_rewritten():
    # (a? b?)* is (a | b)*: llama.cpp would find the original left-recursive once expanded.
    expr = rep(seq(opt(Lit("a")), opt(Lit("b"))), 0, None)
    assert expr == Rep(alt(Lit("a"), Lit("b")), 0, None)
    assert rep(opt(Lit("a")), 1, None) == Rep(Lit("a"), 0, None)
    assert rep(EMPTY, 0, None) == EMPTY and rep(NEVER, 0, 3) == EMPTY and rep(NEVER, 1, 3) == NEVER


def test_an_optional_rule_body_starts_with_its_empty_alternative():
    assert render(opt(alt(Lit("a"), Lit("b"))))["r"] == '| "a" | "b"'


# --- checks ---------------------------------------------------------------------------------------

def test_left_recursion_is_found_without_recursion():
    n = 5000
    chain = {f"r{i}": alt(Ref(f"r{i + 1}"), Lit("x")) for i in range(n)}
    chain[f"r{n}"] = alt(Ref("r0"), Lit("y"))
    with pytest.raises(GrammarProblem, match="refers to itself"):
        check(chain, {})
    chain[f"r{n}"] = Lit("y")
    check(chain, {})
    with pytest.raises(GrammarProblem):
        check({"a": seq(opt(Lit("x")), Ref("b")), "b": seq(Ref("e"), Ref("a")), "e": EMPTY}, {})


def test_alternatives_that_combine_in_too_many_ways_are_refused():
    diamonds = {f"d{i}": alt(Ref(f"d{i + 1}"), seq(Ref(f"d{i + 1}"), Lit("x"))) for i in range(30)}
    diamonds["d30"] = Lit("y")
    with pytest.raises(GrammarProblem, match="too many ways"):
        check(diamonds, {})


# --- schema pieces --------------------------------------------------------------------------------

def test_merge():
    assert merge([{"type": ["string", "null"]}, {"type": "string", "maxLength": 3}, {"maxLength": 2}]) == \
        {"type": ["string"], "maxLength": 2}
    assert merge([{"type": "number"}, {"type": "integer"}]) == {"type": ["integer"]}
    assert merge([{"type": "string"}, {"type": "integer"}]) is None
    assert merge([{"properties": {"a": {"type": "string"}}, "required": ["a"]},
                  {"properties": {"a": {"maxLength": 1}, "b": {}}, "required": ["b", "a"], "title": "T"}]) == \
        {"properties": {"a": {"allOf": [{"type": "string"}, {"maxLength": 1}]}, "b": {}}, "required": ["a", "b"]}
    assert merge([{"format": "date"}, {"format": "uuid"}]) == {}  # disagreeing keywords are dropped


def test_json_pointers_and_anchors():
    doc = Document({"$defs": {"a/b": {"x": 1}, "c~d": [{"$anchor": "here", "y": 2}], "%": {"z": 3}}})
    assert doc.resolve("#/$defs/a~1b", ())[1] == {"x": 1}
    assert doc.resolve("#/$defs/c~0d/0", ())[1]["y"] == 2
    assert doc.resolve("#/$defs/%25", ())[1] == {"z": 3}
    assert doc.resolve("#here", ())[0] == ("$defs", "c~d", 0)
    assert doc.resolve("#", ())[1] is doc.root
    with pytest.raises(SchemaProblem):
        doc.resolve("#/$defs/c~0d/1", ())


# --- the builder ----------------------------------------------------------------------------------

def test_builder_api():
    g = GrammarBuilder()
    first = g.add_schema({"type": "integer"}, "x y", "p")
    second = g.add_schema({"type": "integer"}, "x y", "p")
    assert (first, second) == ("x-y", "x-y-2")
    g.add_rule("root", f'{first} {g.literal("!")} {second}')
    rules = rules_of(g.build())
    assert rules["root"] == 'x-y "!" x-y-2' and rules["x-y"] == "json-integer" and "space" in rules


def test_defs_of_each_schema_get_their_own_rules():
    def item(kind: str) -> dict:
        return {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
                "$defs": {"Item": {"type": "object", "properties": {"v": {"type": kind}}, "required": ["v"]}}}

    g = GrammarBuilder()
    g.add_schema(item("integer"), "a", "a")
    g.add_schema(item("boolean"), "b", "b")
    rules = rules_of(g.build())
    assert "json-integer" in rules["a-Item"] and '"true"' in rules["b-Item"]


def test_object_members_keep_their_declared_order():
    g = GrammarBuilder()
    name = g.add_schema({"type": "object", "properties": {"z": {"type": "null"}, "a": {"type": "null"},
                                                          "m": {"type": "null"}}, "required": ["a"]}, "o", "p")
    body = rules_of(g.build())[name]
    assert body.index('"\\"a\\""') < body.index("o-part-2"), body


def test_errors_name_the_parameter():
    with pytest.raises(InvalidRequest) as info:
        GrammarBuilder().add_schema({"properties": {"p": {"type": "string", "pattern": "(?<"}}}, "s", "tools[2].x")
    assert info.value.param == "tools[2].x.properties.p.pattern"
    with pytest.raises(InvalidRequest) as info:
        GrammarBuilder().add_schema({"type": "nonsense"}, "s", "tools[2].x")
    assert info.value.param == "tools[2].x"


def test_text_without_needs_a_tag():
    with pytest.raises(ValueError):
        GrammarBuilder().text_without("t", "")


def test_the_package_is_pure_python():
    import ast
    from pathlib import Path

    for path in (Path(__file__).resolve().parent.parent / "engine" / "gbnf").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("llama_cpp", "fastapi", "pydantic", "server") for n in names), path

