"use strict";
// A small Markdown renderer for model replies: fenced code blocks, inline code, headings, lists,
// quotes, emphasis and http(s) links. The text is HTML-escaped before any markup is added, so a
// reply can never inject HTML; the page's Content-Security-Policy refuses inline scripts besides.
(function () {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const HOLE = "\u0000"; // marks where inline code goes back; stripped from the input first

  function inline(text) {
    const codes = [];
    text = text.replace(/`([^`\n]+)`/g, (_, code) => `${HOLE}${codes.push(code) - 1}${HOLE}`);
    text = text
      .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
      .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)/g,
        '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
    return text.replace(new RegExp(`${HOLE}(\\d+)${HOLE}`, "g"), (_, i) => `<code>${codes[Number(i)]}</code>`);
  }

  // Block structure, line by line; `text` is already escaped. An unclosed fence (a reply still
  // streaming) is shown as code up to the end.
  function blocks(text) {
    const out = [];
    let para = [], list = null, code = null;
    const flush = () => {
      if (para.length) out.push(`<p>${inline(para.join("\n")).replace(/\n/g, "<br>")}</p>`);
      if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
      para = [];
      list = null;
    };
    const item = (tag, text) => {
      if (para.length || (list && list.tag !== tag)) flush();
      list = list || { tag, items: [] };
      list.items.push(text);
    };
    for (const line of text.split("\n")) {
      const fence = /^\s*```\s*([\w+#.-]*)/.exec(line);
      let m;
      if (code) {
        if (fence && !fence[1]) {
          out.push(codeBlock(code));
          code = null;
        } else code.lines.push(line);
      } else if (fence) {
        flush();
        code = { lang: fence[1], lines: [] };
      } else if (!line.trim()) flush();
      else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
      } else if ((m = /^\s*[-*+]\s+(.*)$/.exec(line))) item("ul", m[1]);
      else if ((m = /^\s*\d+[.)]\s+(.*)$/.exec(line))) item("ol", m[1]);
      else if ((m = /^&gt;\s?(.*)$/.exec(line))) {
        flush();
        out.push(`<blockquote>${inline(m[1])}</blockquote>`);
      } else if (list) list.items[list.items.length - 1] += " " + line.trim();
      else para.push(line);
    }
    if (code) out.push(codeBlock(code));
    flush();
    return out.join("");
  }

  function codeBlock(code) {
    const lang = code.lang ? ` class="language-${code.lang}"` : "";
    const label = code.lang ? `<span class="lang">${code.lang}</span>` : "";
    return `<pre>${label}<code${lang}>${code.lines.join("\n")}</code></pre>`;
  }

  window.renderMarkdown = (markdown) => blocks(escapeHtml(markdown.split(HOLE).join("")));
})();
