import pytest

from engine import InvalidRequest
from engine.chat_template import ChatTemplate


def Message(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def test_default_chatml_renders_with_generation_prompt():
    t = ChatTemplate(None)
    text = t.render([Message("system", "be brief"), Message("user", "hi")])
    assert text == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_trailing_assistant_message_is_continued_not_closed():
    t = ChatTemplate(None)
    text = t.render([Message("user", "count"), Message("assistant", "1, 2,")])
    assert text.endswith("<|im_start|>assistant\n1, 2,")


def test_tojson_does_not_html_escape():
    t = ChatTemplate("{{ messages[0]['content'] | tojson }}")
    assert t.render([Message("user", "<a & b>")]) == '"<a & b>"'


def test_template_errors_are_invalid_requests():
    t = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        t.render([Message("user", "x")])


def test_sandbox_blocks_attribute_escapes():
    t = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(Exception):
        t.render([Message("user", "x")])
