"""Engine failures as data: the server maps each kind to a status and a protocol error body."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose. Errors cross the worker process boundary
    pickled; the default exception pickling would call __init__ with the message alone."""

    def __reduce__(self):
        return _restore, (type(self), str(self), self.__dict__)


def _restore(cls: type, text: str, state: dict) -> EngineError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, text)
    exc.__dict__.update(state)
    return exc


class InvalidRequest(EngineError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class ContextLengthExceeded(EngineError):
    def __init__(self, n_prompt: int, n_ctx: int, max_tokens: int | None = None):
        super().__init__(f"prompt of {n_prompt} tokens does not fit a context of {n_ctx}")
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens


class ModelNotFound(EngineError):
    def __init__(self, model: str):
        super().__init__(f"model {model!r} not found")
        self.model = model


class Overloaded(EngineError):
    def __init__(self, model: str, retry_after: float = 1.0, why: str = "is overloaded"):
        super().__init__(f"model {model!r} {why}")
        self.model = model
        self.retry_after = retry_after


class ModelLoadFailed(EngineError):
    def __init__(self, model: str, reason: str):
        super().__init__(f"model {model!r} failed to load: {reason}")
        self.model = model
        self.reason = reason


class EngineCrashed(EngineError):
    """The model's worker process died (a native fault, an out-of-memory kill...) or stopped
    answering; every request it held ends with this."""

    def __init__(self, model: str, reason: str):
        super().__init__(f"model {model!r} crashed ({reason}); it is being restarted")
        self.model = model
        self.reason = reason


class ConfigError(EngineError):
    """models.yaml (or a single-model flag) is invalid; raised at start-up."""
