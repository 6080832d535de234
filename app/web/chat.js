/* The chat page. It talks to this server's API, same origin, with relative URLs:
     POST v1/chat/stream  server-sent events: meta, token… (checked sentences), done, [DONE]
     POST v1/feedback     thumbs up / down on one reply
     GET  v1/sessions/ID  the transcript: restores a conversation, brings a human agent's replies
   What the model wrote, the passages and everything else from the server go into the page as
   text only (textContent, text nodes), never as HTML: a passage or an answer holding markup
   shows the markup. The page's Content-Security-Policy allows scripts and styles from this
   origin only, so there is no inline script or style anywhere. */
(function () {
  "use strict";

  const SESSION_KEY = "shopdesk.session";
  const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
  const POLL_MS = 10000; // how often a handed-off conversation looks for the agent's replies
  const MAX_WAIT_S = 600; // a Retry-After longer than this is shown as this
  // Material Icons "thumb_up" (Apache License 2.0); rotated for thumbs down.
  const THUMB =
    "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06" +
    "L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22" +
    "l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

  const params = new URLSearchParams(location.search);
  const lang = pickLang(params.get("lang"), navigator.languages || [navigator.language]);
  const T = window.SHOPDESK_STRINGS[lang];

  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const send = document.getElementById("send");
  const banner = document.getElementById("handoff");
  const bannerText = document.getElementById("handoff-text");
  const embedded = params.get("embed") === "1" && window.parent !== window;

  const state = {
    sessionId: loadSession(),
    busy: false,
    pausedUntil: 0,
    poll: null,
    agentSeen: new Set(),
    controller: null,
  };

  /** The UI language: ?lang=zh|en, else the browser's first Chinese or English preference. */
  function pickLang(asked, preferred) {
    if (asked === "zh" || asked === "en") return asked;
    for (const tag of preferred) {
      const low = String(tag || "").toLowerCase();
      if (low.startsWith("zh")) return "zh";
      if (low.startsWith("en")) return "en";
    }
    return "en";
  }

  function t(key, vars) {
    let text = T[key];
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function applyStrings() {
    document.documentElement.lang = T.htmlLang;
    document.title = T.title;
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = T[node.dataset.i18n];
    }
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", T[node.dataset.i18nLabel]);
      node.title = T[node.dataset.i18nLabel];
    }
    input.placeholder = T.placeholder;
  }

  // --- the session: kept across turns, and across page loads in this tab ----------------

  function loadSession() {
    try {
      const id = sessionStorage.getItem(SESSION_KEY);
      return id && SESSION_ID.test(id) ? id : null;
    } catch (_) {
      return null; // storage blocked (some third-party iframes): the session lives in memory
    }
  }

  function saveSession(id) {
    state.sessionId = id;
    try {
      sessionStorage.setItem(SESSION_KEY, id);
    } catch (_) {
      /* in memory only */
    }
  }

  function clearSession() {
    state.sessionId = null;
    try {
      sessionStorage.removeItem(SESSION_KEY);
    } catch (_) {
      /* nothing stored */
    }
  }

  // --- the message log -------------------------------------------------------------------

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function addMessage(role, text) {
    const item = make("article", "msg " + role);
    const who = role === "user" ? T.you : role === "agent" ? T.agent : T.bot;
    item.append(make("span", role === "agent" ? "who" : "who visually-hidden", who));
    item.append(make("div", "text", text));
    log.append(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function icon(path) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const shape = document.createElementNS(ns, "path");
    shape.setAttribute("d", path);
    svg.append(shape);
    return svg;
  }

  function sourceId(messageId, n) {
    return "src-" + messageId + "-" + n;
  }

  function openSource(messageId, n) {
    const details = document.getElementById(sourceId(messageId, n));
    if (!details) return;
    details.open = true;
    details.scrollIntoView({ block: "nearest" });
    details.querySelector("summary").focus({ preventScroll: true });
  }

  function citeLink(citation, messageId) {
    const link = make("a", "cite", "[" + citation.n + "]");
    link.href = "#" + sourceId(messageId, citation.n);
    link.title = citation.title;
    link.setAttribute("aria-label", t("citeLabel", { n: citation.n }) + ": " + citation.title);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openSource(messageId, citation.n);
    });
    return link;
  }

  /** Text without Markdown's bold markers (**), which the shop's documents and the model
      use and which would otherwise show as asterisks (the text stays text: nothing is parsed). */
  function plain(text) {
    return String(text).replace(/\*\*/g, "");
  }

  /** The answer as text nodes, with each [n] that names a citation made a link to it. */
  function answerNodes(text, citations, messageId) {
    const byN = new Map(citations.map((c) => [Number(c.n), c]));
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
      const citation = byN.get(Number(match[1]));
      if (!citation) continue;
      if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
      nodes.push(citeLink(citation, messageId));
      last = match.index + match[0].length;
    }
    if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
    return nodes;
  }

  function sourceList(citations, messageId) {
    const box = make("div", "sources");
    box.append(make("p", "sources-title", T.sources));
    for (const citation of citations) {
      const details = make("details", "source");
      details.id = sourceId(messageId, citation.n);
      const summary = make("summary");
      summary.append(make("span", "n", "[" + citation.n + "]"), " " + citation.title);
      details.append(
        summary,
        make("blockquote", "passage", plain(citation.snippet)),
        make("p", "origin", citation.source),
      );
      box.append(details);
    }
    return box;
  }

  function feedbackBar(messageId) {
    const bar = make("div", "feedback");
    const up = make("button", "thumb up");
    const down = make("button", "thumb down");
    const note = make("span", "note");
    note.setAttribute("role", "status");
    for (const [button, label] of [[up, T.helpful], [down, T.notHelpful]]) {
      button.type = "button";
      button.title = label;
      button.setAttribute("aria-label", label);
      button.setAttribute("aria-pressed", "false");
      button.append(icon(THUMB));
    }
    up.addEventListener("click", () => rate(messageId, "up", up, down, note));
    down.addEventListener("click", () => rate(messageId, "down", up, down, note));
    bar.append(make("span", "prompt", T.feedbackPrompt), up, down, note);
    return bar;
  }

  async function rate(messageId, rating, up, down, note) {
    const before = [up.getAttribute("aria-pressed"), down.getAttribute("aria-pressed")];
    up.setAttribute("aria-pressed", String(rating === "up"));
    down.setAttribute("aria-pressed", String(rating === "down"));
    note.textContent = "";
    try {
      const response = await fetch("v1/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ message_id: messageId, rating: rating }),
      });
      if (!response.ok) throw new Error("feedback answered " + response.status);
      note.textContent = T.feedbackThanks;
    } catch (_) {
      up.setAttribute("aria-pressed", before[0]);
      down.setAttribute("aria-pressed", before[1]);
      note.textContent = T.feedbackFailed;
    }
  }

  /** A finished reply: the answer (the same text as the streamed sentences, now with
      its [n] markers as links), its sources and the feedback buttons. */
  function showAnswer(item, done) {
    item.dataset.state = "done";
    item.dataset.messageId = done.message_id;
    item.dataset.outcome = done.outcome || "";
    const citations = Array.isArray(done.citations) ? done.citations : [];
    const body = item.querySelector(".text");
    body.replaceChildren(...answerNodes(plain(done.answer), citations, done.message_id));
    if (citations.length) item.append(sourceList(citations, done.message_id));
    item.append(feedbackBar(done.message_id));
  }

  function showFailure(item, text) {
    item.dataset.state = "error";
    item.classList.add("error");
    item.querySelector(".text").replaceChildren(text);
    log.scrollTop = log.scrollHeight;
  }

  // --- hand-off: a person takes over; their replies come from the transcript ------------

  function showHandoff(ticketId) {
    bannerText.textContent = ticketId ? t("handoffText", { ticket: ticketId }) : "";
    banner.hidden = false;
    if (state.poll === null) state.poll = setInterval(refresh, POLL_MS);
  }

  function hideHandoff() {
    banner.hidden = true;
    if (state.poll !== null) clearInterval(state.poll);
    state.poll = null;
  }

  async function transcript() {
    if (!state.sessionId) return null;
    const response = await fetch("v1/sessions/" + encodeURIComponent(state.sessionId), {
      cache: "no-store",
    });
    if (response.status === 404) clearSession();
    return response.ok ? response.json() : null;
  }

  function showAgentReplies(messages) {
    for (const message of messages) {
      if (message.role === "agent" && !state.agentSeen.has(message.id)) {
        state.agentSeen.add(message.id);
        addMessage("agent", message.text);
      }
    }
  }

  async function refresh() {
    if (state.busy) return;
    let found;
    try {
      found = await transcript();
    } catch (_) {
      return; // offline for a moment: the next poll tries again
    }
    if (!found) return;
    showAgentReplies(found.messages);
    if (!found.ticket) hideHandoff(); // the agent closed it: the assistant answers again
  }

  /** Shows the conversation this tab had before a reload (the widget on another shop page). */
  async function restore() {
    let found;
    try {
      found = await transcript();
    } catch (_) {
      return;
    }
    if (!found) return;
    for (const message of found.messages) {
      if (message.role === "user") addMessage("user", message.text);
      else if (message.role === "agent") showAgentReplies([message]);
      else if (message.role === "assistant") {
        showAnswer(addMessage("bot", ""), {
          message_id: message.id,
          answer: message.text,
          citations: message.citations,
          outcome: message.outcome,
        });
      }
    }
    if (found.ticket) showHandoff(found.ticket.id);
  }

  // --- one turn --------------------------------------------------------------------------

  /** Feeds `onEvent(kind, data)` with each server-sent event of a fetch response. */
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let kind = "";
    let data = [];
    const lines = (final) => {
      for (;;) {
        const end = /\r\n|\r|\n/.exec(buffer);
        if (!end) return;
        // a lone \r at the end may be the first half of \r\n: wait for the next chunk
        if (end[0] === "\r" && end.index === buffer.length - 1 && !final) return;
        const line = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        if (line === "") {
          if (data.length) onEvent(kind || "message", data.join("\n"));
          kind = "";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "event") kind = value;
          else if (field === "data") data.push(value);
        }
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      lines(false);
    }
    buffer += decoder.decode() + "\n\n";
    lines(true);
  }

  function retryAfter(response) {
    const header = response.headers.get("Retry-After");
    if (!header) return 0;
    let seconds = /^\d+$/.test(header.trim())
      ? Number(header)
      : Math.ceil((Date.parse(header) - Date.now()) / 1000);
    if (!Number.isFinite(seconds) || seconds < 1) return 0;
    return Math.min(seconds, MAX_WAIT_S);
  }

  function pause(seconds) {
    state.pausedUntil = Date.now() + seconds * 1000;
    updateSend();
    setTimeout(updateSend, seconds * 1000 + 50);
  }

  function updateSend() {
    send.disabled = state.busy || Date.now() < state.pausedUntil;
  }

  async function showHttpError(item, response, message) {
    let code = "";
    try {
      code = String((await response.json()).error.code);
    } catch (_) {
      /* not our error shape (a proxy's page): the status says enough */
    }
    const wait = retryAfter(response);
    let text = T.error;
    if (response.status === 429) text = wait ? t("rateLimited", { s: wait }) : T.busyNow;
    else if (response.status === 503) text = wait ? t("busy", { s: wait }) : T.busyNow;
    else if (response.status === 504) text = T.timeout;
    else if (code === "message_too_long") text = T.tooLong;
    else if (code === "session_not_found" || code === "session_forbidden") {
      clearSession();
      hideHandoff();
      text = T.sessionLost;
    }
    showFailure(item, text);
    if (!input.value) input.value = message; // nothing was answered: let them send it again
    if (wait) pause(wait);
  }

  function streamErrorText(error) {
    const code = error && error.code;
    if (code === "busy") return T.busyNow;
    if (code === "model_timeout") return T.timeout;
    return T.error;
  }

  async function ask(message) {
    state.busy = true;
    updateSend();
    addMessage("user", message);
    const item = addMessage("bot", "");
    item.dataset.state = "waiting";
    const body = item.querySelector(".text");
    body.append(make("span", "typing", T.typing));
    const live = document.createTextNode("");
    let finished = false;
    const controller = new AbortController();
    state.controller = controller;
    const request = { message: message };
    if (state.sessionId) request.session_id = state.sessionId;
    try {
      const response = await fetch("v1/chat/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(request),
        cache: "no-store",
        signal: controller.signal,
      });
      if (!response.ok) {
        await showHttpError(item, response, message);
        return;
      }
      await readEvents(response, (kind, data) => {
        if (data === "[DONE]" || finished) return;
        const event = JSON.parse(data);
        if (kind === "meta") {
          saveSession(event.session_id);
          item.dataset.messageId = event.message_id;
        } else if (kind === "token") {
          const stick = atBottom();
          if (item.dataset.state === "waiting") {
            item.dataset.state = "streaming";
            body.replaceChildren(live);
          }
          live.appendData(event.text);
          if (stick) log.scrollTop = log.scrollHeight;
        } else if (kind === "done") {
          finished = true;
          showAnswer(item, event);
          if (event.handoff) showHandoff(event.handoff.ticket_id);
          log.scrollTop = log.scrollHeight;
        } else if (kind === "error") {
          finished = true;
          showFailure(item, streamErrorText(event.error));
        }
      });
      if (!finished) showFailure(item, T.error); // the stream ended without an answer
    } catch (error) {
      if (error && error.name === "AbortError") return; // "New chat" while it was answering
      showFailure(item, error instanceof TypeError ? T.offline : T.error);
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        state.busy = false;
        updateSend();
      }
    }
  }

  function submit() {
    const message = input.value.trim();
    if (!message || state.busy || Date.now() < state.pausedUntil) return;
    input.value = "";
    autosize();
    ask(message);
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 132) + "px";
  }

  function welcome() {
    const item = addMessage("bot", T.welcome);
    item.classList.add("welcome");
  }

  function newChat() {
    if (state.controller) state.controller.abort();
    state.controller = null;
    state.busy = false;
    updateSend();
    clearSession();
    hideHandoff();
    state.agentSeen.clear();
    log.replaceChildren();
    welcome();
    input.focus();
  }

  // --- start -----------------------------------------------------------------------------

  applyStrings();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter breaks the line; never while an input method is composing
    // (Enter then confirms the Chinese characters).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", autosize);
  document.getElementById("new-chat").addEventListener("click", newChat);
  if (embedded) {
    const close = document.getElementById("close");
    close.hidden = false;
    close.addEventListener("click", () => window.parent.postMessage("shopdesk:close", "*"));
  }
  welcome();
  if (state.sessionId) {
    state.busy = true;
    updateSend();
    restore().finally(() => {
      state.busy = false;
      updateSend();
      document.documentElement.dataset.ready = "true";
    });
  } else {
    document.documentElement.dataset.ready = "true";
  }
})();
