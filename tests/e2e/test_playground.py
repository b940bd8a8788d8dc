"""The playground page in a real headless Chromium against the real server and model: a streamed
reply with its stats, stop mid-reply (the sequence freed), a tool call answered, the key prompt,
and the rendering of reasoning, tool calls and Markdown. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .browser import chrome, ensure_chromium
from .conftest import ROOT, launch

pytest.importorskip("selenium", reason="selenium is in the test extra: pip install -e '.[test]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
STATS = re.compile(r"^(\d+) tokens · TTFT (\d+) ms · ([\d.]+) tok/s · (\d+) of (\d+) prompt tokens cached"
                   r"( · cut off at max tokens)?$")
LONG = "Write a long story about a dragon who learns to bake bread."
TOOLS = '[{"type": "function", "function": {"name": "get_weather", "parameters": ' \
        '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]'


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    return ensure_chromium()


@pytest.fixture
def page(chromium):
    driver = chrome(*chromium)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def open_page(driver, base_url: str) -> None:
    driver.get(f"{base_url}/")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))


def fill(driver, element_id: str, value: str) -> None:
    """Set a field as typing would, for inputs (a range) that send_keys cannot set."""
    driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input'));", element_id, value)


def ask(driver, text: str, max_tokens: int, temperature: str = "0") -> None:
    fill(driver, "max-tokens", str(max_tokens))
    fill(driver, "temperature", temperature)
    prompt = driver.find_element(By.ID, "prompt")
    prompt.send_keys(text)
    prompt.send_keys(Keys.ENTER)


def reply(driver):
    return driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]


def finished(driver, timeout: float = 120) -> str:
    """The last reply's stats line, once it has one (the reply has ended)."""
    WebDriverWait(driver, timeout).until(lambda d: reply(d).find_element(By.CLASS_NAME, "stats").text)
    return reply(driver).find_element(By.CLASS_NAME, "stats").text


def content(driver) -> str:
    return reply(driver).find_element(By.CLASS_NAME, "content").text


def test_a_message_gets_a_streamed_reply_with_its_stats(server, page):
    open_page(page, server.base_url)
    assert {o.get_attribute("value") for o in Select(page.find_element(By.ID, "model")).options} >= {"smollm2-135m"}
    page.find_element(By.ID, "system").send_keys("You are a terse assistant.")
    ask(page, "Name three colors.", max_tokens=40)
    stats = finished(page)
    shot(page, "playground.png")
    assert content(page).strip()
    match = STATS.match(stats)
    assert match, stats
    tokens, ttft, rate, cached, prompt = int(match[1]), int(match[2]), float(match[3]), int(match[4]), int(match[5])
    assert 1 <= tokens <= 40 and ttft > 0 and rate > 0 and 0 <= cached <= prompt
    count = httpx.post(f"{server.base_url}/v1/chat/completions/input_tokens", json={
        "model": "smollm2-135m", "messages": [{"role": "system", "content": "You are a terse assistant."},
                                              {"role": "user", "content": "Name three colors."}]})
    assert prompt == count.json()["input_tokens"]  # the page sent what it shows


def test_stop_ends_a_long_reply_and_frees_its_sequence(server, page):
    open_page(page, server.base_url)
    aborted = server.wait_idle()["aborted"]
    ask(page, LONG, max_tokens=2000)
    seen = []  # the reply's length as it streams in
    deadline = time.monotonic() + 60
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        seen.append(len(content(page)))
        time.sleep(0.05)
    assert len({n for n in seen if n}) >= 3, f"the reply did not stream in: lengths {seen}"
    assert server.stats()["running"] == 1
    page.find_element(By.ID, "stop").click()
    stats = finished(page, 10)
    assert stats.startswith("stopped · ≈"), f"the reply was not stopped mid-way: {stats}"
    at_stop = content(page)
    assert server.wait_idle()["running"] == 0
    assert server.stats()["aborted"] == aborted + 1
    time.sleep(0.5)
    assert content(page) == at_stop and page.find_element(By.ID, "send").is_displayed()
    shot(page, "playground-stopped.png")


def test_a_tool_call_shows_as_a_call_and_its_result_goes_back(server, page):
    open_page(page, server.base_url)
    page.find_element(By.CSS_SELECTOR, "aside details summary").click()
    fill(page, "tools", TOOLS)
    Select(page.find_element(By.ID, "tool-choice")).select_by_value("required")
    ask(page, "What is the weather in Paris?", max_tokens=100)
    finished(page)
    call = reply(page).find_element(By.CLASS_NAME, "tool-call")
    assert call.find_element(By.CLASS_NAME, "tool-name").text == "tool call: get_weather"
    assert '"city"' in call.find_element(By.CLASS_NAME, "tool-args").text
    call.find_element(By.CLASS_NAME, "tool-result").send_keys('{"sky": "sunny", "celsius": 21}')
    Select(page.find_element(By.ID, "tool-choice")).select_by_value("none")
    ask(page, "Say it in one sentence.", max_tokens=30)
    assert STATS.match(finished(page)) and not reply(page).find_elements(By.CLASS_NAME, "error")
    shot(page, "playground-tools.png")


def test_reasoning_folds_and_markdown_renders_code_without_markup(server, page):
    """Rendering only: the page's own functions fed the server's chunk shapes (the default model
    does not reason)."""
    open_page(page, server.base_url)
    page.execute_script("""
        const view = assistantView();
        const reply = {content: "", reasoning: "", calls: [], usage: null, chunks: 0, started: 0, first: null};
        for (const delta of [{reasoning_content: "Let me think."}, {content: "Use `x`:\\n```py\\nif a<b: pass\\n```"},
                             {content: "\\n<img src=x onerror=alert(1)> **done**"}])
            onChunk({choices: [{index: 0, delta}]}, reply, view);
        reply.ended = 1;
        finish(reply, view);""")
    node = reply(page)
    details = node.find_element(By.CLASS_NAME, "reasoning")
    assert details.is_displayed() and details.get_attribute("open") is None  # folded
    assert node.find_element(By.CSS_SELECTOR, ".thinking").get_attribute("textContent") == "Let me think."
    code = node.find_element(By.CSS_SELECTOR, ".content pre code.language-py")
    assert code.text == "if a<b: pass"
    assert node.find_element(By.CSS_SELECTOR, ".content strong").text == "done"
    assert not node.find_elements(By.CSS_SELECTOR, ".content img")
    assert "<img src=x" in node.find_element(By.CLASS_NAME, "content").text


def test_with_api_keys_the_page_asks_for_a_key_and_sends_it(tmp_path, page):
    with launch(ROOT / "models.yaml", tmp_path / "server.log", "--api-key", "sekrit") as srv:
        page.get(f"{srv.base_url}/")
        WebDriverWait(page, 30).until(lambda d: d.find_element(By.ID, "key-form").is_displayed())
        assert "needs an API key" in page.find_element(By.ID, "notice").text
        key = page.find_element(By.ID, "api-key")
        key.send_keys("wrong", Keys.ENTER)
        WebDriverWait(page, 30).until(lambda d: "refused" in d.find_element(By.ID, "notice").text)
        key.clear()
        key.send_keys("sekrit", Keys.ENTER)
        WebDriverWait(page, 30).until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
        ask(page, "Hi!", max_tokens=8)
        assert STATS.match(finished(page))
