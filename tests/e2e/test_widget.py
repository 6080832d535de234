"""The chat widget in a real browser against the real server (the session's, 1.5B model).

Debian's chromium (/usr/bin/chromium) is driven by Playwright for Python; Playwright's own
browser download is never used. Each browser starts with a fresh temporary profile. The
page is opened at a phone's size and used as a shopper would: typing, reading the answer
as it streams, opening a citation, rating the answer, being handed to a person, in English
and Chinese, and from a shop's page through /widget.js. Screenshots are written to
var/test-artifacts/widget/ (printed; run with -s to see the paths).
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.support.paths import ROOT
from tests.support.shopdesk import ADMIN_KEY

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "widget"
PHONE: ViewportSize = {"width": 390, "height": 844}
ANSWER_MS = 300_000  # a generous ceiling for one answer from the model on 2 busy cores
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# From data/sample_shop/golden/sample_golden.jsonl (sample-en-04): answered by the model
# from the returns policy, in a few sentences, so the stream carries many pieces.
QUESTION = "What is the RMA number for and what do I do with it?"
# Markup in what the server sends must show as text, never become elements.
MARKUP = '<img src="x" onerror="window.__pwned = 1"><b>bold</b>'

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed at /usr/bin/chromium (make installs it)",
    ),
]


@dataclass
class Tab:
    """A page with what went wrong in it (console errors, CSP violations, exceptions)."""

    page: Page
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # launch() gives the browser a new temporary user-data dir, removed on close.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Tabs:
    """Opens pages, each in a context (a fresh profile's worth of storage) of its own."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    def open(self, locale: str = "en-US", viewport: ViewportSize = PHONE) -> Tab:
        phone = viewport["width"] < 500
        context = self.browser.new_context(
            viewport=viewport,
            device_scale_factor=2,
            is_mobile=phone,
            has_touch=phone,
            locale=locale,
        )
        self.contexts.append(context)
        context.set_default_timeout(30_000)
        tab = Tab(context.new_page())
        tab.page.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
        tab.page.on("pageerror", lambda e: tab.problems.append(str(e)))
        return tab


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Tabs]:
    opened = Tabs(browser)
    yield opened
    for context in opened.contexts:
        context.close()


def _open(tab: Tab, url: str) -> None:
    response = tab.page.goto(url)
    assert response is not None
    assert response.status == 200
    tab.page.wait_for_selector("html[data-ready=true]")


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    print(f"widget screenshot: {path}")  # noqa: T201 - where to find it, as asked of the test
    return path


def _send(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def _last_reply(page: Page, timeout: float = ANSWER_MS) -> dict[str, str]:
    """Waits for the newest bot reply to finish; its state, message id and text."""
    page.wait_for_function(
        """() => { const all = document.querySelectorAll('#log .msg.bot:not(.welcome)');
                   const last = all[all.length - 1];
                   return last && ['done', 'error'].includes(last.dataset.state); }""",
        timeout=timeout,
    )
    reply: dict[str, str] = page.evaluate(
        """() => { const all = document.querySelectorAll('#log .msg.bot:not(.welcome)');
                   const last = all[all.length - 1];
                   return {state: last.dataset.state, id: last.dataset.messageId || '',
                           text: last.querySelector('.text').textContent}; }"""
    )
    return reply


def _watch_growth(page: Page) -> None:
    """Records the length of the reply's text at every change while it is streaming."""
    page.evaluate(
        """() => { window.__lengths = [];
            new MutationObserver(() => {
                const all = document.querySelectorAll('#log .msg.bot');
                const last = all[all.length - 1];
                if (last && last.dataset.state === 'streaming')
                    window.__lengths.push(last.querySelector('.text').textContent.length);
            }).observe(document.getElementById('log'),
                       {subtree: true, childList: true, characterData: true}); }"""
    )


def _session(page: Page) -> str:
    session: str = page.evaluate("sessionStorage.getItem('shopdesk.session')")
    return session


def _transcript(server: str, session: str) -> dict[str, Any]:
    r = httpx.get(f"{server}/v1/sessions/{session}", timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _feedback_up(server: str) -> int:
    r = httpx.get(f"{server}/v1/admin/stats", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["feedback_up"])


def test_a_shopper_reads_a_streamed_cited_answer_rates_it_and_asks_for_a_person(
    server: str, tabs: Tabs
) -> None:
    tab = tabs.open()
    page = tab.page
    response = page.goto(f"{server}/?lang=en")
    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    page.wait_for_selector("html[data-ready=true]")
    assert page.locator("#send").inner_text() == "Send"

    _watch_growth(page)
    _send(page, QUESTION)
    reply = _last_reply(page)
    assert reply["state"] == "done", reply
    lengths: list[int] = page.evaluate("window.__lengths")
    # The reply was shown while it was still streaming (checked sentences, as they pass),
    # and only ever grew: nothing shown was taken back.
    assert lengths, lengths
    assert lengths == sorted(lengths), lengths
    assert page.locator("#log .msg.user .text").last.inner_text() == QUESTION

    # A citation link in the answer opens the passage it cites, as the server stored it.
    session = _session(page)
    stored = next(m for m in _transcript(server, session)["messages"] if m["id"] == reply["id"])
    assert stored["citations"], stored
    cite = page.locator("#log .msg.bot:not(.welcome) a.cite").first
    assert cite.count() == 1, f"no [n] link in {reply['text']!r}"
    cite.click()
    target = cite.get_attribute("href")
    assert target
    assert target.startswith("#src-")
    source = page.locator(target)
    assert source.get_attribute("open") is not None
    passage = source.locator(".passage")
    assert passage.is_visible()
    shown = passage.inner_text().strip()
    snippets = [c["snippet"].replace("**", "").strip() for c in stored["citations"]]
    assert shown
    assert shown in snippets, (shown, snippets)
    assert source.locator(".origin").inner_text() in {c["source"] for c in stored["citations"]}
    _shot(page, "en-answer-with-passage.png")

    # Thumbs up reaches the server.
    before = _feedback_up(server)
    with page.expect_response(lambda r: r.url.endswith("/v1/feedback")) as posted:
        page.locator("#log .msg.bot:not(.welcome) button.thumb.up").last.click()
    assert posted.value.status == 200
    assert posted.value.json()["message_id"] == reply["id"]
    page.wait_for_selector("#log button.thumb.up[aria-pressed=true]")
    assert _feedback_up(server) == before + 1

    # The next turn stays in the same conversation; asking for a person shows the banner.
    assert page.locator("#handoff").is_hidden()
    _send(page, "I want to talk to a real person.")
    handed = _last_reply(page)
    assert handed["state"] == "done", handed
    banner = page.locator("#handoff")
    banner.wait_for(state="visible")
    transcript = _transcript(server, session)
    assert transcript["ticket"] is not None, transcript
    assert transcript["ticket"]["id"] in banner.inner_text()
    assert "A human agent will take over." in banner.inner_text()
    users = [m["text"] for m in transcript["messages"] if m["role"] == "user"]
    assert users == [QUESTION, "I want to talk to a real person."]
    _shot(page, "en-handoff.png")

    # A reload (the shopper opens another page of the shop) brings the conversation back.
    page.reload()
    page.wait_for_selector("html[data-ready=true]")
    assert page.locator("#log .msg.user .text").all_inner_texts() == users
    assert page.locator("#handoff").is_visible()
    assert page.locator(f"#log .msg.bot[data-message-id='{reply['id']}'] a.cite").count() >= 1
    assert not tab.problems, tab.problems


def test_chinese_ui_text_and_handoff(server: str, tabs: Tabs) -> None:
    tab = tabs.open()
    page = tab.page
    _open(tab, f"{server}/?lang=zh")
    strings: dict[str, dict[str, str]] = page.evaluate("window.SHOPDESK_STRINGS")
    zh, en = strings["zh"], strings["en"]
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#send").inner_text() == "发送"
    assert page.locator("h1").inner_text() == "在线客服"
    assert page.get_attribute("#input", "placeholder") == zh["placeholder"]
    shown = page.eval_on_selector_all(
        "[data-i18n]", "nodes => nodes.map(n => [n.dataset.i18n, n.textContent])"
    )
    assert shown
    for key, text in shown:
        assert text == zh[key] != en[key], key
    assert page.locator("#log .msg.welcome .text").inner_text() == zh["welcome"]

    _send(page, "转人工")
    reply = _last_reply(page)
    assert reply["state"] == "done", reply
    banner = page.locator("#handoff")
    banner.wait_for(state="visible")
    assert zh["handoffTitle"] in banner.inner_text()
    ticket = _transcript(server, _session(page))["ticket"]
    assert ticket is not None
    assert ticket["reason"] == "requested"
    assert f"工单号 {ticket['id']}" in banner.inner_text()
    _shot(page, "zh-handoff.png")
    assert not tab.problems, tab.problems


def test_the_language_follows_the_browser_without_lang(server: str, tabs: Tabs) -> None:
    chinese = tabs.open(locale="zh-CN")
    _open(chinese, f"{server}/")
    assert chinese.page.locator("#send").inner_text() == "发送"
    english = tabs.open(locale="en-GB")
    _open(english, f"{server}/")
    assert english.page.locator("#send").inner_text() == "Send"


def _sse(*events: tuple[str, dict[str, Any]]) -> str:
    """A stream as sse-starlette writes it (CRLF line ends, comment pings included)."""
    parts = [": ping\r\n\r\n"]
    parts += [f"event: {kind}\r\ndata: {json.dumps(data)}\r\n\r\n" for kind, data in events]
    return "".join(parts) + "data: [DONE]\r\n\r\n"


def test_server_text_is_never_markup_and_errors_read_as_sentences(server: str, tabs: Tabs) -> None:
    """The server's replies are replaced here (Playwright routes), so every path is seen:
    markup in an answer, a passage and a title; an error event; a 429 with Retry-After."""
    tab = tabs.open()
    page = tab.page
    _open(tab, f"{server}/?lang=en")
    replies: list[tuple[int, dict[str, str], str]] = []

    def fake(route: Route) -> None:
        status, headers, body = replies.pop(0)
        route.fulfill(status=status, headers=headers, body=body)

    page.route("**/v1/chat/stream", fake)
    sse = {"Content-Type": "text/event-stream; charset=utf-8"}
    citation = {"n": 1, "doc_id": "d", "title": f"T{MARKUP}", "source": "s.md",
                "snippet": f"passage {MARKUP}"}  # fmt: skip
    replies.append((200, sse, _sse(
        ("meta", {"session_id": "s1", "message_id": "m1"}),
        ("token", {"text": MARKUP[:20]}),
        ("token", {"text": MARKUP[20:]}),
        ("done", {"session_id": "s1", "message_id": "m1", "answer": f"{MARKUP} [1]",
                  "citations": [citation], "outcome": "generated", "handoff": None}),
    )))  # fmt: skip
    replies.append((200, sse, _sse(
        ("meta", {"session_id": "s1", "message_id": "m2"}),
        ("error", {"error": {"code": "model_timeout", "message": "took too long"}}),
    )))  # fmt: skip
    limited = json.dumps({"error": {"code": "rate_limited", "message": "too many"}})
    replies.append((429, {"Content-Type": "application/json", "Retry-After": "7"}, limited))

    _send(page, MARKUP)
    reply = _last_reply(page, timeout=30_000)
    assert reply["state"] == "done"
    assert reply["text"] == f"{MARKUP} [1]"
    page.locator("#log a.cite").first.click()
    assert page.locator("#src-m1-1 .passage").inner_text() == f"passage {MARKUP}"
    assert page.locator("#log .msg.user .text").last.inner_text() == MARKUP
    assert page.locator("#log img, #log b, #log script").count() == 0
    assert page.evaluate("window.__pwned") is None

    _send(page, "second")
    reply = _last_reply(page, timeout=30_000)
    assert reply["state"] == "error"
    assert reply["text"] == "That took too long to answer. Please try again."

    _send(page, "third")
    reply = _last_reply(page, timeout=30_000)
    assert reply["state"] == "error"
    assert reply["text"] == "You're sending messages a little fast. Please try again in 7 seconds."
    assert page.input_value("#input") == "third"  # given back, to send again
    assert page.locator("#send").is_disabled()
    _shot(page, "en-rate-limited.png")
    assert not replies
    assert not [p for p in tab.problems if "429" not in p], tab.problems


@contextmanager
def _shop_page(html: str) -> Iterator[str]:
    """The URL of a one-page "shop" site served from another loopback port (another
    origin than the chat server's, as a real shop's site would be)."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_shop_page_embeds_the_widget_with_one_script_tag(server: str, tabs: Tabs) -> None:
    """A page of another origin includes /widget.js: a button opens the chat in an
    iframe (the whole screen on a phone, a panel on a desktop), and the chat's own close
    button closes it."""
    html = (
        '<!doctype html><meta name="viewport" content="width=device-width">'
        "<h1>Lumen &amp; Leaf</h1><p>Our shop's own page.</p>"
        f'<script src="{server}/widget.js" data-lang="zh" async></script>'
    )
    with _shop_page(html) as shop:
        for name, viewport in [("phone", PHONE), ("desktop", ViewportSize(width=1280, height=800))]:
            tab = tabs.open(viewport=viewport)
            page = tab.page
            page.goto(shop)
            button = page.locator("button[data-shopdesk=toggle]")
            assert button.get_attribute("aria-label") == "在线客服"
            button.click()
            frame = page.frame_locator("iframe")
            expect(frame.locator("html")).to_have_attribute("data-ready", "true")
            assert frame.locator("h1").inner_text() == "在线客服"
            iframe = page.locator("iframe")
            assert iframe.get_attribute("src") == f"{server}/?lang=zh&embed=1"
            box = iframe.bounding_box()
            assert box is not None
            if name == "phone":
                assert box["width"] == viewport["width"]
                assert button.is_hidden()  # the chat's header closes it
            else:
                assert box["width"] < viewport["width"] / 2
                assert button.is_visible()
                assert button.get_attribute("aria-label") == "关闭对话"
            frame.locator("#close").wait_for(state="visible")
            _shot(page, f"embedded-{name}.png")
            frame.locator("#close").click()
            iframe.wait_for(state="hidden")
            assert button.is_visible()
            assert button.get_attribute("aria-expanded") == "false"
            assert not tab.problems, tab.problems
