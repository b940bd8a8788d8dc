"""A model's vocabulary: tokenizing, token pieces and special tokens (part of Backend)."""

from __future__ import annotations

import ctypes

import llama_cpp as ll


class Vocabulary:
    """Needs `_vocab` (llama.cpp's vocabulary pointer) and `n_vocab`; call `_init_vocabulary` once
    both are set."""

    _vocab: ctypes.c_void_p
    n_vocab: int

    def _init_vocabulary(self) -> None:
        self._piece_buf = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}
        self._eog = {t for t in range(self.n_vocab) if ll.llama_vocab_is_eog(self._vocab, t)}

    def token_text(self, token: int) -> str:
        """The token's text with special tokens rendered (for BOS/EOS in chat templates)."""
        return self._piece(token, special=True).decode("utf-8", errors="replace")

    @property
    def bos(self) -> int:
        return ll.llama_vocab_bos(self._vocab)

    @property
    def eos(self) -> int:
        return ll.llama_vocab_eos(self._vocab)

    @property
    def adds_bos(self) -> bool:
        return bool(ll.llama_vocab_get_add_bos(self._vocab))

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (ll.llama_token * cap)()
        n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            cap = -n
            buf = (ll.llama_token * cap)()
            n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """Bytes that a generated token contributes to the text (special tokens render empty)."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token, special=False)
        return piece

    def _piece(self, token: int, special: bool) -> bytes:
        n = ll.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            return buf.raw[:n]
        return self._piece_buf.raw[:n]

    def token_bytes(self, token: int) -> bytes:
        """The token's bytes with special tokens rendered, for /tokenize and /detokenize. Safe on
        any thread: `piece` shares one buffer with the step loop, this allocates its own."""
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return token in self._eog
