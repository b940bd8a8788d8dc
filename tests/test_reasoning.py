from engine.reasoning import ReasoningParser


def split(parser: ReasoningParser, pieces: list[str]) -> tuple[str, str]:
    reasoning = answer = ""
    for piece in pieces:
        r, a = parser.push(piece)
        reasoning, answer = reasoning + r, answer + a
    r, a = parser.finish()
    return reasoning + r, answer + a


def test_think_block_at_the_start_is_split_out_char_by_char():
    text = "<think>\nLet me add 2 and 2.\n</think>\n\nIt is 4."
    assert split(ReasoningParser(False), list(text)) == ("\nLet me add 2 and 2.\n", "It is 4.")


def test_prompt_that_opened_the_block_starts_inside_it():
    assert split(ReasoningParser(True), ["hmm", "</thi", "nk>Yes."]) == ("hmm", "Yes.")


def test_no_block_means_all_answer():
    assert split(ReasoningParser(False), ["Plain ", "answer <think> here"]) == ("", "Plain answer <think> here")


def test_unclosed_thinking_stays_reasoning():
    assert split(ReasoningParser(True), ["still thinking"]) == ("still thinking", "")
