"use strict";
// The playground: one page over this server's own OpenAI API (/v1/models, /v1/chat/completions).
// Stop aborts the fetch; the server sees the connection close and frees the sequence.
const $ = (id) => document.getElementById(id);
const KEY = "ggserve.apiKey";
const state = { history: [], controller: null, pendingCalls: [], key: localStorage.getItem(KEY) || "" };

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  return h;
}

function notice(text) {
  $("notice").textContent = text;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || JSON.stringify(body);
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function askForKey(why) {
  $("key-form").hidden = false;
  $("api-key").focus();
  notice(why);
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401) {
    askForKey(state.key ? "The server refused that API key." : "This server needs an API key.");
    return;
  }
  if (!response.ok) {
    notice(`Could not list the models: ${await errorText(response)}`);
    return;
  }
  const select = $("model");
  const previous = select.value || localStorage.getItem("ggserve.model");
  select.replaceChildren(...(await response.json()).data.map((m) => new Option(m.id, m.id)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  notice("");
}

function bubble(role) {
  const node = document.createElement("div");
  node.className = `msg ${role}`;
  $("messages").append(node);
  return node;
}

function part(parent, tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  parent.append(node);
  return node;
}

function assistantView() {
  const node = bubble("assistant");
  const reasoning = part(node, "details", "reasoning");
  reasoning.hidden = true;
  part(reasoning, "summary", "").textContent = "Reasoning";
  return { node, reasoning, thinking: part(reasoning, "div", "thinking"), content: part(node, "div", "content"),
           calls: part(node, "div", "calls"), stats: part(node, "div", "stats") };
}

function requestBody(model, tools) {
  const system = $("system").value.trim();
  const body = {
    model, stream: true, stream_options: { include_usage: true },
    messages: [...(system ? [{ role: "system", content: system }] : []), ...state.history],
    temperature: Number($("temperature").value), top_p: Number($("top-p").value),
  };
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  if (tools) Object.assign(body, { tools, tool_choice: $("tool-choice").value });
  return body;
}

function readTools() {
  const text = $("tools").value.trim();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`Tools: not valid JSON (${e.message})`);
  }
}

// Answers typed for the previous reply's tool calls go first, as `tool` messages.
function takeToolResults() {
  for (const call of state.pendingCalls) {
    state.history.push({ role: "tool", tool_call_id: call.id, content: call.input.value });
    call.input.disabled = true;
  }
  state.pendingCalls = [];
}

async function send(text) {
  const model = $("model").value;
  if (!model || state.controller || (!text && !state.pendingCalls.length)) return;
  let tools;
  try {
    tools = readTools();
  } catch (e) {
    notice(e.message);
    return;
  }
  localStorage.setItem("ggserve.model", model);
  takeToolResults();
  if (text) {
    state.history.push({ role: "user", content: text });
    bubble("user").textContent = text;
  }
  const view = assistantView();
  const reply = { content: "", reasoning: "", calls: [], usage: null, chunks: 0, started: performance.now(),
                  first: null, ended: null, finish: null, stopped: false, error: null };
  state.controller = new AbortController();
  busy(true);
  try {
    await stream(requestBody(model, tools), reply, view, state.controller.signal);
  } catch (e) {
    if (e.name === "AbortError") reply.stopped = true;
    else reply.error = e.message;
  } finally {
    reply.ended = performance.now();
    state.controller = null;
    busy(false);
    finish(reply, view);
  }
}

async function stream(body, reply, view, signal) {
  const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(),
                                                          body: JSON.stringify(body), signal });
  if (response.status === 401) askForKey("This server needs an API key.");
  if (!response.ok) throw new Error(await errorText(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue; // ": keep-alive" comments
        if (line === "data: [DONE]") return;
        onChunk(JSON.parse(line.slice(6)), reply, view);
      }
    }
  }
}

function onChunk(chunk, reply, view) {
  if (chunk.error) throw new Error(chunk.error.message);
  if (chunk.usage) reply.usage = chunk.usage;
  const choice = chunk.choices && chunk.choices.length ? chunk.choices[0] : null;
  if (!choice) return;
  reply.finish = choice.finish_reason || reply.finish;
  const delta = choice.delta || {};
  if (reply.first === null && (delta.content || delta.reasoning_content || delta.tool_calls)) {
    reply.first = performance.now();
  }
  if (delta.content || delta.reasoning_content) reply.chunks += 1;
  reply.content += delta.content || "";
  reply.reasoning += delta.reasoning_content || "";
  for (const call of delta.tool_calls || []) {
    const into = (reply.calls[call.index] = reply.calls[call.index] || { id: "", name: "", arguments: "" });
    into.id = call.id || into.id;
    into.name = (call.function && call.function.name) || into.name;
    into.arguments += (call.function && call.function.arguments) || "";
  }
  if (!view.pending) view.pending = setTimeout(() => show(reply, view), 40); // one render per 40 ms
}

function show(reply, view) {
  view.pending = null;
  view.reasoning.hidden = !reply.reasoning;
  view.thinking.textContent = reply.reasoning;
  view.content.innerHTML = window.renderMarkdown(reply.content);
  reply.calls.forEach((call, i) => {
    const box = view.calls.children[i] || part(view.calls, "div", "tool-call");
    if (!box.firstChild) {
      part(box, "div", "tool-name");
      part(box, "pre", "tool-args");
    }
    box.children[0].textContent = `tool call: ${call.name}`;
    box.children[1].textContent = call.arguments;
  });
  $("messages").scrollTop = $("messages").scrollHeight;
}

function finish(reply, view) {
  clearTimeout(view.pending);
  show(reply, view);
  if (reply.error) part(view.node, "div", "error").textContent = reply.error;
  view.stats.textContent = statsLine(reply);
  if (!reply.content && !reply.calls.length) return;
  const turn = { role: "assistant", content: reply.content || null };
  if (reply.reasoning) turn.reasoning_content = reply.reasoning;
  if (reply.calls.length) {
    turn.tool_calls = reply.calls.map((c) => ({ id: c.id, type: "function",
                                                function: { name: c.name, arguments: c.arguments } }));
    reply.calls.forEach((call, i) => {
      const input = part(view.calls.children[i], "input", "tool-result");
      input.placeholder = `result of ${call.name}, sent with your next message`;
      state.pendingCalls.push({ id: call.id, input });
    });
  }
  state.history.push(turn);
}

// Tokens, time to first token, decode rate, cached prompt tokens. A stopped reply has no usage:
// its tokens are estimated from its text (a chunk may carry several tokens: the server sends a
// stream's tokens on together for up to stream_interval_ms), at about 4 characters a token.
function statsLine(reply) {
  const usage = reply.usage;
  const tokens = usage ? usage.completion_tokens
    : Math.max(reply.chunks, Math.round((reply.content.length + reply.reasoning.length) / 4));
  const parts = [usage ? `${tokens} tokens` : `≈${tokens} tokens`];
  if (reply.first !== null) {
    parts.push(`TTFT ${Math.round(reply.first - reply.started)} ms`);
    const seconds = (reply.ended - reply.first) / 1000;
    if (tokens > 1 && seconds > 0) parts.push(`${((tokens - 1) / seconds).toFixed(1)} tok/s`);
  }
  if (usage) {
    const cached = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
    parts.push(`${cached} of ${usage.prompt_tokens} prompt tokens cached`);
  }
  if (reply.stopped) parts.unshift("stopped");
  if (reply.finish === "length") parts.push("cut off at max tokens");
  return parts.join(" · ");
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("prompt").disabled = on;
}

function clearChat() {
  if (state.controller) state.controller.abort();
  state.history = [];
  state.pendingCalls = [];
  $("messages").replaceChildren();
}

function wire() {
  for (const id of ["temperature", "top-p"]) {
    $(id).addEventListener("input", () => ($(`${id}-value`).textContent = $(id).value));
  }
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value.trim();
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("clear").addEventListener("click", clearChat);
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    localStorage.setItem(KEY, state.key);
    $("key-form").hidden = true;
    loadModels();
  });
}

wire();
loadModels().catch((e) => notice(`Could not reach the server: ${e.message}`));
