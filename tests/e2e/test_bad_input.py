"""Bad input over HTTP: every route answers a 4xx in the one error shape, never a 500.

A table of (route, category) cases against the session's real server: empty and
whitespace-only text, oversized bodies (declared and chunked) and fields, wrong
types, invalid JSON and UTF-8, control characters and lone surrogates, huge or
hostile `filters`, unknown fields, malformed ids, dates and tokens. Each reply
must be the status and code the API promises, with a body that is exactly
`{"error": {"code", "message"}}` and no traceback. The service has no HTTP
ingest or upload route (ingest is the CLI), so there is no file case.

No case reaches the model: every one is refused before a turn starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.shopdesk import ADMIN_KEY

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"content-type": "application/json"}
NO_TICKET = "0" * 32  # a well-formed id that names nothing: bodies are checked first
BODY_LIMIT = 65_536  # the default server.max_body_bytes
MESSAGE_LIMIT = 2_000  # the default server.max_message_chars


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    content_type: str = "application/json"  # sent with `content`


def raw(text: str) -> bytes:
    """A JSON body written by hand (lone surrogates and NaN are spelt, not encoded)."""
    return text.encode("utf-8")


# The free-text field of each JSON route, and a valid body to put bad values into.
TEXT_ROUTES: dict[str, tuple[str, str, dict[str, Any], dict[str, str]]] = {
    "chat": ("/v1/chat", "message", {}, {}),
    "stream": ("/v1/chat/stream", "message", {}, {}),
    "search": ("/v1/search", "query", {}, {}),
    "feedback": ("/v1/feedback", "comment", {"message_id": NO_TICKET, "rating": "up"}, {}),
    "reply": (f"/v1/agent/tickets/{NO_TICKET}/reply", "text", {}, AUTH),
    "close": (f"/v1/agent/tickets/{NO_TICKET}/close", "note", {}, AUTH),
}
CONTROL = {  # C0, escape sequence, DEL, C1 (NEL): only tab, newline and CR may pass
    "nul": "hi\x00there",
    "escape": "\x1b[31mred",
    "del": "a\x7fb",
    "c1": "a\x85b",
}


def _text_route_cases(
    name: str, path: str, fieldname: str, base: dict[str, Any], headers: dict[str, str]
) -> Iterator[Case]:
    """Every body category against one JSON route, bad values in its free-text field."""

    def case(category: str, status: int, code: str, **kw: Any) -> Case:
        return Case(f"{name}-{category}", "POST", path, status, code, headers=headers, **kw)

    def with_text(value: object) -> dict[str, Any]:
        return {**base, fieldname: value}

    body_prefix = json.dumps(base)[:-1] + (", " if base else "")

    if name == "close":  # its body is optional: no body closes, and this ticket is not there
        yield case("empty-body", 404, "ticket_not_found", content=b"")
    else:
        yield case("empty-body", 422, "invalid_request", content=b"")
    yield case("invalid-json", 422, "invalid_request", content=b"{not json")
    yield case("truncated-json", 422, "invalid_request", content=raw(body_prefix))
    yield case("invalid-utf8", 422, "invalid_request", content=b"\xff\xfe")
    yield case(
        "invalid-utf8-in-string",
        422,
        "invalid_request",
        content=raw(body_prefix + f'"{fieldname}": "') + b'\xff\xfe"}',
    )
    yield case("deep-nesting", 422, "invalid_request", content=b"[" * 20_000 + b"]" * 20_000)
    yield case("body-is-a-list", 422, "invalid_request", json=[with_text("hi")])
    yield case("body-is-a-string", 422, "invalid_request", json="hi")
    yield case("wrong-type-int", 422, "invalid_request", json=with_text(123))
    yield case("wrong-type-object", 422, "invalid_request", json=with_text({"a": 1}))
    yield case("unknown-field", 422, "invalid_request", json={**with_text("hi"), "extra": 1})
    yield case(
        "lone-surrogate",
        422,
        "invalid_request",
        content=raw(body_prefix + f'"{fieldname}": "\\ud800 hi"}}'),
    )
    for label, text in CONTROL.items():
        yield case(f"control-{label}", 422, "invalid_request", json=with_text(text))
    yield case(
        "declared-1mb",
        413,
        "payload_too_large",
        json=with_text("x" * 1_000_000),
    )
    yield case("text-plain", 422, "invalid_request", content=b"hi", content_type="text/plain")


def _text_cases() -> Iterator[Case]:
    for name, (path, fieldname, base, headers) in TEXT_ROUTES.items():
        yield from _text_route_cases(name, path, fieldname, base, headers)

    # blank and too long, per field (the route's own codes where it has them)
    for name, path in (("chat", "/v1/chat"), ("stream", "/v1/chat/stream")):
        for label, blank in (
            ("empty", ""),
            ("whitespace", " \n\t\u3000 "),  # ideographic space included
            ("invisible", "\u200b\ufeff"),  # zero-width space and BOM: nothing to read
        ):
            yield Case(
                f"{name}-{label}", "POST", path, 422, "empty_message", json={"message": blank}
            )
        yield Case(
            f"{name}-too-long",
            "POST",
            path,
            422,
            "message_too_long",
            json={"message": "x" * (MESSAGE_LIMIT + 1)},
        )
    for label, blank in (("empty", ""), ("whitespace", " \n\t ")):
        yield Case(
            f"search-{label}", "POST", "/v1/search", 422, "empty_query", json={"query": blank}
        )
        yield Case(
            f"reply-{label}",
            "POST",
            f"/v1/agent/tickets/{NO_TICKET}/reply",
            422,
            "invalid_request",
            json={"text": blank},
            headers=AUTH,
        )
    yield Case(
        "search-too-long",
        "POST",
        "/v1/search",
        422,
        "query_too_long",
        json={"query": "x" * (MESSAGE_LIMIT + 1)},
    )
    yield Case(
        "feedback-comment-too-long",
        "POST",
        "/v1/feedback",
        422,
        "invalid_request",
        json={"message_id": NO_TICKET, "rating": "up", "comment": "x" * 1001},
    )
    yield Case(
        "reply-too-long",
        "POST",
        f"/v1/agent/tickets/{NO_TICKET}/reply",
        422,
        "invalid_request",
        json={"text": "x" * 4001},
        headers=AUTH,
    )
    yield Case(
        "close-note-too-long",
        "POST",
        f"/v1/agent/tickets/{NO_TICKET}/close",
        422,
        "invalid_request",
        json={"note": "x" * 2001},
        headers=AUTH,
    )


FILTERS: dict[str, str] = {  # hand-written JSON: NaN, 1e400 and \ud800 cannot be json.dumps'd
    "200-filters": json.dumps({f"k{i}": i for i in range(200)}),
    "nan": '{"kind": NaN}',
    "infinity": '{"kind": Infinity}',
    "overflowing-float": '{"kind": 1e400}',
    "int-over-64-bits": '{"kind": 100000000000000000000000000000}',
    "operator-key": '{"$and": "policy"}',
    "reserved-key": '{"#document": "policy"}',
    "empty-key": '{"": "policy"}',
    "long-key": json.dumps({"k" * 65: "policy"}),
    "long-value": json.dumps({"kind": "p" * 257}),
    "control-in-key": json.dumps({"ki\nnd": "policy"}),
    "control-in-value": json.dumps({"kind": "po\x00licy"}),
    "surrogate-in-value": '{"kind": "\\udc00"}',
    "nested-value": '{"kind": {"$ne": "policy"}}',
    "list-value": '{"kind": ["policy"]}',
    "null-value": '{"kind": null}',
    "not-an-object": '["kind", "policy"]',
}


def _filter_cases() -> Iterator[Case]:
    for name, (path, fieldname) in {
        "chat": ("/v1/chat", "message"),
        "stream": ("/v1/chat/stream", "message"),
        "search": ("/v1/search", "query"),
    }.items():
        for label, filters in FILTERS.items():
            body = f'{{"{fieldname}": "return policy", "filters": {filters}}}'
            yield _invalid(f"{name}-filters-{label}", "POST", path, content=raw(body))


def _invalid(id_: str, method: str, path: str, **kw: Any) -> Case:
    """A request the validation refuses: 422 `invalid_request`."""
    return Case(id_, method, path, 422, "invalid_request", **kw)


def _other_cases() -> Iterator[Case]:
    chat = {"message": "How can I track my order?"}
    for name, path in (("chat", "/v1/chat"), ("stream", "/v1/chat/stream")):
        for label, token in (
            ("latin1", "caf\xe9.1.x"),  # before the fix: a 500 (the HMAC needs ASCII)
            ("spaces-inside", "a b.1.c"),
            ("huge", "a" * 600 + ".1.b"),
            ("unsigned", "QzAwMQ.9999999999.forged"),
        ):
            yield Case(
                f"{name}-token-{label}",
                "POST",
                path,
                401,
                "invalid_customer_token",
                json=chat,
                headers={"X-Customer-Token": token},
            )
        yield _invalid(f"{name}-session-id-bad", "POST", path, json={**chat, "session_id": "../x"})
        yield _invalid(f"{name}-lang-bad", "POST", path, json={**chat, "lang": "fr"})
    for label, body in (
        ("k-wrong-type", {"query": "returns", "k": "five"}),
        ("k-too-big", {"query": "returns", "k": 10_000}),
        ("mode-bad", {"query": "returns", "mode": "magic"}),
    ):
        yield _invalid(f"search-{label}", "POST", "/v1/search", json=body)
    for label, body in (
        ("rating-bad", {"message_id": NO_TICKET, "rating": "meh"}),
        ("id-bad", {"message_id": "x\x00", "rating": "up"}),
        ("missing-fields", {}),
    ):
        yield _invalid(f"feedback-{label}", "POST", "/v1/feedback", json=body)
    for label, ident in (
        ("nul", "%00"),
        ("too-long", "a" * 65),
        ("invalid-utf8", "%FF%FE"),
        ("dots", "a.b"),
        ("unicode", "%E4%BD%A0"),
    ):
        tickets = f"/v1/agent/tickets/{ident}"
        yield _invalid(f"session-id-{label}", "GET", f"/v1/sessions/{ident}")
        yield _invalid(f"ticket-id-{label}", "GET", tickets, headers=AUTH)
        yield _invalid(
            f"reply-id-{label}", "POST", f"{tickets}/reply", json={"text": "hi"}, headers=AUTH
        )
        yield _invalid(f"close-id-{label}", "POST", f"{tickets}/close", headers=AUTH)
    for label, status in (("bogus", "pending"), ("nul", "\x00"), ("empty", "")):
        yield _invalid(
            f"tickets-status-{label}",
            "GET",
            "/v1/agent/tickets",
            headers=AUTH,
            params={"status": status},
        )
    for label, since in (
        ("garbage", "yesterday"),
        ("overflows-utc-high", "9999-12-31T23:59:59-14:00"),  # before the fix: a 500
        ("overflows-utc-low", "0001-01-01T00:00:00+14:00"),  # before the fix: a 500
        ("month-13", "2026-13-01"),
        ("control", "2026-01-01\x00"),
    ):
        yield _invalid(
            f"stats-since-{label}", "GET", "/v1/admin/stats", headers=AUTH, params={"since": since}
        )
    for name, path in (
        ("stats", "/v1/admin/stats"),
        ("tickets", "/v1/agent/tickets"),
        ("ticket", f"/v1/agent/tickets/{NO_TICKET}"),
    ):
        for label, headers in (
            ("no-key", {}),
            ("wrong-key", {"Authorization": "Bearer caf\xe9-not-the-key"}),
            ("api-key-garbage", {"X-API-Key": "\xff\xfe"}),
        ):
            yield Case(f"{name}-{label}", "GET", path, 401, "unauthorized", headers=headers)
    yield Case("chat-wrong-method", "GET", "/v1/chat", 405, "method_not_allowed")
    yield Case("unknown-route", "POST", "/v1/nope", 404, "not_found", json={})


CASES = [*_text_cases(), *_filter_cases(), *_other_cases()]


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    # as bytes: a header may carry any Latin-1 byte, as a client can send it
    headers = {k.encode(): v.encode("latin-1") for k, v in case.headers.items()}
    if case.content is not None:
        headers[b"content-type"] = case.content_type.encode()
    return client.request(
        case.method,
        case.path,
        json=case.json,
        content=case.content,
        headers=headers,
        params=case.params,
    )


def assert_error_shape(r: httpx.Response, status: int, code: str) -> None:
    """Exactly `{"error": {"code": str, "message": str}}`, the promised status and code."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["error"]["code"] == code, body
    assert "Traceback" not in r.text
    assert 'File "' not in r.text


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as http:
        yield http


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_4xx_in_the_error_shape(client: httpx.Client, case: Case) -> None:
    r = _send(client, case)
    assert_error_shape(r, case.status, case.code)


def _chunks(total: int, size: int = 16_384) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer encoding), `total` bytes long."""
    yield b'{"message": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/chat", {}),
        ("/v1/chat/stream", {}),
        ("/v1/search", {}),
        ("/v1/feedback", {}),
        (f"/v1/agent/tickets/{NO_TICKET}/reply", AUTH),
        (f"/v1/agent/tickets/{NO_TICKET}/close", AUTH),
    ],
)
def test_a_chunked_body_over_the_limit_is_a_413(
    client: httpx.Client, path: str, headers: dict[str, str]
) -> None:
    request = client.build_request(
        "POST", path, content=_chunks(1_000_000), headers={**JSON, **headers}
    )
    assert "content-length" not in request.headers  # the case the header check never saw
    assert request.headers["transfer-encoding"] == "chunked"
    r = client.send(request)
    assert_error_shape(r, 413, "payload_too_large")


def test_a_chunked_body_under_the_limit_is_still_read(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"query": "return '
        yield b'policy", "k": 2}'

    r = client.post("/v1/search", content=body(), headers=JSON)
    assert r.status_code == 200, r.text
    assert 1 <= len(r.json()["passages"]) <= 2


def test_a_body_just_under_the_limit_is_not_a_413(client: httpx.Client) -> None:
    # a message under the body limit but over the message limit: the route's own 422
    message = "x" * (BODY_LIMIT - 100)
    r = client.post("/v1/chat", json={"message": message})
    assert_error_shape(r, 422, "message_too_long")
