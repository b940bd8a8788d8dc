"""One JSON Schema document: limits on its shape, and resolution of its local `$ref`s."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from .pattern import MAX_GROUP_DEPTH, group_depth

MAX_DEPTH = 64  # JSON nesting levels of the schema document
# JSON values in all the schemas of one grammar: jsonschema's own check takes ~0.2 ms for each
# subschema, so this keeps a request's check to a few seconds at worst.
MAX_NODES = 50_000

Path = tuple[Any, ...]


class SchemaProblem(Exception):
    """A schema the grammar cannot be built from. `path` locates it inside the schema; with
    `names_field` the error's param points there (a bad `pattern`), otherwise the param stays
    the schema's own, as clients have seen for invalid schemas and unresolvable $refs."""

    def __init__(self, message: str, path: Path = (), names_field: bool = False):
        super().__init__(message)
        self.message = message
        self.path = path
        self.names_field = names_field


def scan(schema: Any, budget: int = MAX_NODES) -> int:
    """Check size, depth and regex nesting without recursion, before anything recursive (the
    JSON Schema validator, Python's regex compiler, the converter) walks the schema. Returns
    the number of JSON values, which must not exceed `budget`."""
    stack: list[tuple[Any, int, Any, Any]] = [(schema, 1, None, None)]  # node, depth, key, parent
    seen = 0
    while stack:
        entry = stack.pop()
        node, depth = entry[0], entry[1]
        seen += 1
        if seen > budget:
            raise SchemaProblem(f"the schemas are too large (more than {MAX_NODES} JSON values in all)")
        if depth > MAX_DEPTH and isinstance(node, (dict, list)):
            raise SchemaProblem(f"the schema nests more than {MAX_DEPTH} levels deep", _path_of(entry))
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str) and group_depth(value) > MAX_GROUP_DEPTH:
                    raise SchemaProblem(f"the pattern nests groups more than {MAX_GROUP_DEPTH} deep",
                                        _path_of((value, depth + 1, key, entry)), names_field=True)
                stack.append((value, depth + 1, key, entry))
        elif isinstance(node, list):
            stack.extend((value, depth + 1, i, entry) for i, value in enumerate(node))
    return seen


def _path_of(entry) -> Path:
    keys = []
    while entry is not None and entry[3] is not None:
        keys.append(entry[2])
        entry = entry[3]
    return tuple(reversed(keys))


class Document:
    def __init__(self, root: Any) -> None:
        self.root = root
        base = root.get("$id") if isinstance(root, dict) else None
        self._base = base.split("#")[0] if isinstance(base, str) else ""
        self._anchors: dict[str, Path] | None = None

    def resolve(self, ref: str, at: Path) -> tuple[Path, Any]:
        """The location and the subschema that `ref` points to."""
        if self._base and ref.startswith(self._base):
            ref = ref[len(self._base):]
        if not ref.startswith("#"):
            raise SchemaProblem(f"$ref '{ref}' points outside the schema; only local references (#...) work", at)
        fragment = unquote(ref[1:])
        if fragment.startswith("/"):
            path = self._pointer(fragment, ref, at)
        elif fragment:
            path = self._anchor(fragment, ref, at)
        else:
            path = ()
        return path, self._at(path)

    def _pointer(self, fragment: str, ref: str, at: Path) -> Path:
        node, path = self.root, []
        for raw in fragment.split("/")[1:]:
            key: Any = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                key = int(key)
            elif not isinstance(node, dict) or key not in node:
                raise SchemaProblem(f"$ref '{ref}' does not resolve to anything in the schema", at)
            node = node[key]
            path.append(key)
        return tuple(path)

    def _anchor(self, name: str, ref: str, at: Path) -> Path:
        if self._anchors is None:
            self._anchors = {}
            stack: list[tuple[Any, Path]] = [(self.root, ())]
            while stack:
                node, path = stack.pop()
                if isinstance(node, dict):
                    for key in ("$anchor", "$dynamicAnchor"):
                        if isinstance(node.get(key), str):
                            self._anchors.setdefault(node[key], path)
                    stack.extend((v, (*path, k)) for k, v in node.items() if isinstance(v, (dict, list)))
                elif isinstance(node, list):
                    stack.extend((v, (*path, i)) for i, v in enumerate(node) if isinstance(v, (dict, list)))
        if name not in self._anchors:
            raise SchemaProblem(f"$ref '{ref}' does not resolve to anything in the schema", at)
        return self._anchors[name]

    def _at(self, path: Path) -> Any:
        node = self.root
        for key in path:
            node = node[key]
        return node
