import pytest


@pytest.fixture(scope="module")
def worker():
    """A child process that compiles and runs grammars with the real llama.cpp (tests/gbnf_worker.py)."""
    from tests.gbnf_worker import Worker

    w = Worker()
    yield w
    w.close()
