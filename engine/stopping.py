"""Stop strings: text that could still become a stop string is held back, never sent."""

from __future__ import annotations


class StopMatcher:
    """Finds the earliest stop string in generated text, even one that spans several tokens."""

    __slots__ = ("_stops", "_quiet", "_held", "matched")

    def __init__(self, stops: list[str], quiet: tuple[str, ...] = ()):
        """`quiet`: stops of the model's own (models.yaml), which end the reply as its end-of-turn
        token does: the client, which never sent them, is not told which one matched."""
        self._stops = [s for s in (*stops, *quiet) if s]
        self._quiet = frozenset(quiet) - set(stops)
        self._held = ""
        self.matched: str | None = None

    @property
    def reported(self) -> str | None:
        """The stop string to name to the client."""
        return None if self.matched in self._quiet else self.matched

    def push(self, text: str) -> str:
        """Feed new text; return the part that is safe to emit now. Sets `matched` on a hit."""
        if not self._stops:
            return text
        buf = self._held + text
        hit, hit_at = None, len(buf)
        for stop in self._stops:
            at = buf.find(stop)
            if 0 <= at < hit_at:
                hit, hit_at = stop, at
        if hit is not None:
            self.matched = hit
            self._held = ""
            return buf[:hit_at]
        keep = self._partial_suffix(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """At the end of generation nothing held can become a stop string any more."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of buf that is a proper prefix of some stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:n]):
                    best = n
                    break
        return best
