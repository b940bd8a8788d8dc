"""The worker's answers to questions about the prompt (engine/tokenizer.py asks them): counts,
tokens, text of tokens, the rendered template. Run on a preparation thread, never the step loop."""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequest
from .messages import CountTokens, Detokenize, RenderPrompt, Tokenize
from .prepare import Preparer, check_text
from .tokenizer import MAX_LISTED_TOKENS, Tokens


def answer(preparer: Preparer, msg: CountTokens | Tokenize | Detokenize | RenderPrompt) -> Any:
    if isinstance(msg, CountTokens):
        return preparer.count(msg.request)
    if isinstance(msg, RenderPrompt):
        return preparer.render(msg.request)
    if isinstance(msg, Detokenize):
        return detokenize(preparer.backend, msg.tokens)
    return tokenize(preparer, msg)


def tokenize(preparer: Preparer, msg: Tokenize) -> Tokens:
    if msg.text is None:
        ids, param = preparer.tokenize(msg.request), "messages"
    else:
        check_text(msg.text, "content")
        ids, param = preparer.encode(msg.text, msg.add_special), "content"
    if len(ids) > MAX_LISTED_TOKENS:
        raise InvalidRequest(f"{param} makes {len(ids)} tokens; at most {MAX_LISTED_TOKENS} are listed "
                             "(count longer texts with /v1/chat/completions/input_tokens)", param=param)
    return Tokens(ids, [preparer.backend.token_bytes(t) for t in ids] if msg.pieces else None)


def detokenize(backend: Any, tokens: list[int]) -> str:
    """Token ids outside the vocabulary never reach llama.cpp."""
    if len(tokens) > MAX_LISTED_TOKENS:
        raise InvalidRequest(f"at most {MAX_LISTED_TOKENS} tokens per call; got {len(tokens)}", param="tokens")
    n_vocab = backend.n_vocab
    for i, token in enumerate(tokens):
        if type(token) is not int or not 0 <= token < n_vocab:
            raise InvalidRequest(f"tokens[{i}]: {token!r} is not a token id of this model (0..{n_vocab - 1})",
                                 param=f"tokens[{i}]")
    return b"".join(backend.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")
