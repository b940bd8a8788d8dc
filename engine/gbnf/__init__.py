"""JSON Schema (and hand-written rules) to GBNF grammars for llama.cpp, in pure Python.

The converter is ggserve's own rather than llama-cpp-python's: that one writes bounded repetitions
as nested groups that llama.cpp's recursive parser cannot take past a few thousand (it refuses
them, then overflows the C stack and kills the process), loops forever on some patterns, and
refuses valid schemas it does not know. This one serves every valid schema as itself or as a
superset, and refuses only malformed, unsatisfiable, or oversized ones, naming where they fail.
"""

from .builder import GrammarBuilder

__all__ = ["GrammarBuilder"]
