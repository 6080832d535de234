"""The request id: taken from `X-Request-ID` when sane, made otherwise, sent back on every
response (errors, 429, streams, 500s) and written on every log line of the request."""

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.logs import formatter_for, install_mask, install_request_id
from app.main import create_app
from app.observability.request_id import (
    HEADER,
    NO_REQUEST,
    RequestIdFilter,
    accept_request_id,
    current_request_id,
)
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # two chat requests at once, one a minute: the third is a 429
    app = create_app(fake_settings(tmp_path, server={"rate_limit_per_minute": 1,
                                                     "rate_limit_burst": 2}))  # fmt: skip

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"request_id": current_request_id()}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken on purpose")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "7",
        "123e4567-e89b-12d3-a456-426614174000",  # a UUID, as proxies send it
        "0f8fad5bd9cb469fa16570867728950e",
        "edge.frontend_01-ab",
        "a" * 64,
    ],
)
def test_a_sane_id_is_kept(value: str) -> None:
    assert accept_request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "a" * 65,  # too long
        "has space",
        "-starts-with-a-dash",
        "semi;colon",
        "<script>",
        "line\nbreak",
        "请求一",
        "wang.fang@example.com",
        "13800138000",  # a phone number would be written unmasked on every line
        "4111111111111111",  # and so would a card number
    ],
)
def test_anything_else_is_refused(value: str | None) -> None:
    assert accept_request_id(value) is None


def test_an_id_is_made_when_none_is_sent_and_a_sane_one_is_echoed(client: TestClient) -> None:
    made = [client.get("/healthz").headers[HEADER] for _ in range(2)]
    assert all(GENERATED.fullmatch(m) for m in made)
    assert made[0] != made[1]
    r = client.get("/whoami", headers={HEADER: "shop-edge-42"})
    assert r.headers[HEADER] == "shop-edge-42"
    assert r.json() == {"request_id": "shop-edge-42"}  # the app saw the same id
    refused = client.get("/whoami", headers={HEADER: "13800138000"})
    assert GENERATED.fullmatch(refused.headers[HEADER])
    assert refused.json() == {"request_id": refused.headers[HEADER]}


def test_every_kind_of_response_carries_the_id(client: TestClient) -> None:
    def sent(method: str, path: str, **kwargs: object) -> tuple[int, str]:
        rid = f"unit-{method.lower()}-{len(path)}-{kwargs.get('marker', 0)}"
        kwargs.pop("marker", None)
        r = client.request(method, path, headers={HEADER: rid}, **kwargs)  # type: ignore[arg-type]
        assert r.headers.get(HEADER) == rid, (method, path, r.status_code, r.headers)
        return r.status_code, rid

    assert sent("POST", "/v1/chat", json={"message": "hello"}, marker=1)[0] == 200
    assert sent("POST", "/v1/chat", json={"message": 1})[0] == 422
    assert sent("POST", "/v1/chat", json={"message": "hello"}, marker=2)[0] == 429
    assert sent("GET", "/healthz")[0] == 200
    assert sent("GET", "/v1/sessions/unknown")[0] == 404
    assert sent("GET", "/nowhere")[0] == 404
    assert sent("POST", "/v1/chat", content=b"{" * 70_000)[0] == 413  # before routing
    assert sent("GET", "/metrics")[0] == 403  # no admin key configured
    assert sent("GET", "/boom")[0] == 500  # answered outside every user middleware


def test_a_stream_carries_the_id(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": "hello"}, headers={HEADER: "unit-stream"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers[HEADER] == "unit-stream"
        assert "[DONE]" in "".join(r.iter_text())


def test_a_header_the_app_set_itself_is_replaced_not_doubled(tmp_path: Path) -> None:
    app = create_app(fake_settings(tmp_path))

    @app.get("/own")
    async def own() -> dict[str, str]:
        return {}

    @app.middleware("http")
    async def sets_its_own(request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers[HEADER] = "from-inside"
        return response

    with TestClient(app) as client:
        r = client.get("/own", headers={HEADER: "from-client"})
    assert r.headers.get_list(HEADER) == ["from-client"]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the root logger writes through a handler set up as `setup_logging` sets one up
    (masked, the request id filter, the text format), at INFO; restored after."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for("text"))
    install_mask(handler, r"(?<![A-Za-z0-9])[A-Za-z]{2}-\d{4}-\d{6}(?!\d)")
    install_request_id(handler)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_log_lines_of_a_request_carry_its_id(client: TestClient, log_lines: io.StringIO) -> None:
    logging.getLogger("tests.request_id").info("before any request")
    handed = client.post(
        "/v1/chat",
        json={"message": "I want to talk to a human agent, call me on 13800138000"},
        headers={HEADER: "unit-log-7"},
    )
    assert handed.json()["outcome"] == "handoff"
    lines = log_lines.getvalue().splitlines()
    assert lines[0].endswith(f"before any request request_id={NO_REQUEST}")
    ours = [line for line in lines if line.endswith(" request_id=unit-log-7")]
    # the turn's line (event loop) and the hand-off's transcript (thread pool)
    assert any(" turn session=" in line for line in ours), lines
    assert any(" handoff ticket=" in line for line in ours), lines
    assert "13800138000" not in log_lines.getvalue()  # still masked
    assert all(" request_id=" in line for line in lines)


def test_the_filter_keeps_an_id_the_record_already_has() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "handed over", (), None)
    record.request_id = "from-another-thread"
    RequestIdFilter().filter(record)
    assert getattr(record, "request_id", None) == "from-another-thread"
    bare = logging.LogRecord("x", logging.INFO, __file__, 1, "at start-up", (), None)
    RequestIdFilter().filter(bare)
    assert getattr(bare, "request_id", None) == NO_REQUEST
