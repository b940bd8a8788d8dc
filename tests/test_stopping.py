from engine.stopping import StopMatcher


def feed(matcher: StopMatcher, pieces: list[str]) -> str:
    out = "".join(matcher.push(p) for p in pieces if matcher.matched is None)
    return out if matcher.matched else out + matcher.flush()


def test_no_stops_passes_text_through_unheld():
    m = StopMatcher([])
    assert m.push("abc") == "abc"


def test_stop_inside_one_piece_cuts_before_it():
    m = StopMatcher(["END"])
    assert feed(m, ["hello END world"]) == "hello "
    assert m.matched == "END"


def test_stop_spanning_pieces_is_never_partly_emitted():
    m = StopMatcher(["STOP"])
    emitted = [m.push(p) for p in ["ab", "cS", "T", "O", "Pzz"]]
    assert emitted == ["ab", "c", "", "", ""]
    assert m.matched == "STOP"


def test_partial_match_that_fails_is_released():
    m = StopMatcher(["STOP"])
    assert m.push("xST") == "x"
    assert m.push("ay") == "STay"
    assert m.matched is None


def test_held_text_is_flushed_at_the_end():
    m = StopMatcher(["STOP"])
    assert m.push("abST") == "ab"
    assert m.flush() == "ST"


def test_earliest_of_several_stops_wins():
    m = StopMatcher(["world", "lo w"])
    assert feed(m, ["hel", "lo world"]) == "hel"
    assert m.matched == "lo w"
