from engine.detokenizer import Detokenizer


def test_multibyte_character_split_across_tokens_is_held_until_whole():
    d = Detokenizer()
    euro = "€".encode()  # three bytes
    assert d.push(b"a" + euro[:1]) == "a"
    assert d.push(euro[1:2]) == ""
    assert d.push(euro[2:] + b"b") == "€b"


def test_incomplete_character_at_end_becomes_replacement():
    d = Detokenizer()
    assert d.push("é".encode()[:1]) == ""
    assert d.flush() == "\ufffd"
