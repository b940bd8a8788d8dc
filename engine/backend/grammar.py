"""JSON Schema -> GBNF with llama-cpp-python's converter, and the fixes ggserve needs around it."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
from llama_cpp.llama_grammar import SchemaConverter

from ..errors import InvalidRequest

_DEFS_KEYS = ("$defs", "definitions")


class GrammarBuilder:
    """Collects several schemas and hand-written rules into one grammar. Each schema's $defs are
    renamed under its own prefix: the converter names a referenced rule after the last segment
    of its $ref alone, so two tools that both define `Item` would otherwise share one rule."""

    def __init__(self) -> None:
        self._converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._rules: dict[str, str] = {}

    def add_schema(self, schema: Any, name: str, param: str) -> str:
        """Add `schema` as rule `name` (and its sub-rules); return the rule's name."""
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{param}: a JSON Schema must be an object", param=param)
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequest(f"{param}: invalid JSON Schema: {exc.message}", param=param) from exc
        try:
            resolved = self._converter.resolve_refs(_namespaced(schema, name), name)
            return self._converter.visit(resolved, name)
        except (KeyError, ValueError, TypeError, AssertionError, RecursionError) as exc:
            raise InvalidRequest(f"{param}: this JSON Schema cannot be turned into a grammar: {exc}", param=param) from exc

    def add_rule(self, name: str, body: str) -> None:
        self._rules[name] = body

    @staticmethod
    def literal(text: str) -> str:
        """A GBNF string literal matching `text` exactly."""
        return json.dumps(text)

    def build(self) -> str:
        rules = "\n".join(f"{name} ::= {body}" for name, body in self._rules.items())
        return f"{rules}\n{self._converter.format_grammar()}\n"


def _namespaced(schema: dict, prefix: str) -> dict:
    schema = copy.deepcopy(schema)
    renames: dict[str, str] = {}
    for key in _DEFS_KEYS:
        defs = schema.get(key)
        if isinstance(defs, dict):
            schema[key] = {f"{prefix}-{name}": sub for name, sub in defs.items()}
            renames.update({f"#/{key}/{name}": f"#/{key}/{prefix}-{name}" for name in defs})

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref in renames:
                node["$ref"] = renames[ref]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    return schema
