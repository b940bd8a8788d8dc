"""Per-key rate limits (requests and tokens per minute) on a moving window, from `limits`."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond, storage, strategies

from .errors import ApiError


class RateLimiter:
    """Requests are counted as they arrive; tokens (prompt + completion) as they are spent, so a
    key that has used its minute's tokens is refused until the window frees some."""

    def __init__(self, rpm: int = 0, tpm: int = 0, window_s: int = 60):
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        # The limits are per minute; the window is shorter only where tests need it to be.
        self._rpm = RateLimitItemPerSecond(rpm, window_s) if rpm else None
        self._tpm = RateLimitItemPerSecond(tpm, window_s) if tpm else None
        self._window = window_s

    @property
    def enabled(self) -> bool:
        return bool(self._rpm or self._tpm)

    def admit(self, key: str) -> ApiError | None:
        """Count one request for `key`; an error to answer with when over a limit."""
        if self._tpm and not self._limiter.test(self._tpm, key):
            return self._refusal(self._tpm, key, "tokens")
        if self._rpm and not self._limiter.hit(self._rpm, key):
            return self._refusal(self._rpm, key, "requests")
        return None

    def spend(self, key: str, tokens: int) -> None:
        if self._tpm and tokens > 0:
            # Take what is left of the window when a request overshoots it: the next one waits.
            left = self._limiter.get_window_stats(self._tpm, key).remaining
            if left:
                self._limiter.hit(self._tpm, key, cost=min(tokens, left))

    def _refusal(self, item: RateLimitItem, key: str, what: str) -> ApiError:
        reset = self._limiter.get_window_stats(item, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        return ApiError(429, f"Rate limit reached: {item.amount} {what} per {self._window} s for this key. "
                             f"Try again in {wait} s.", code="rate_limit_exceeded", headers={"Retry-After": str(wait)})
