"""Structured logs: `log.format = "json"` writes one masked JSON object per record and line,
with the request id; the text format ends each line with it."""

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.logs import HANDLER_NAME, PiiFilter, setup_logging
from app.main import create_app
from app.observability.request_id import HEADER, RequestIdFilter
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit

Setup = Callable[..., io.StringIO]


@pytest.fixture
def bare_root() -> Iterator[Setup]:
    """`setup_logging(**kwargs)` on a root logger with no other handlers (not even pytest's
    capture), writing to a string instead of stderr; the root logger is restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def setup(**kwargs: object) -> io.StringIO:
        root.handlers[:] = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
        setup_logging(**kwargs)  # type: ignore[arg-type]
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        handler.setStream(stream)
        return stream

    try:
        yield setup
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_masked_json_line(bare_root: Setup) -> None:
    stream = bare_root(log_format="json")
    log = logging.getLogger("tests.json_logs")
    log.info("customer %s wrote\nfrom %s", "alice@example.com", "+86 138 0013 8000")
    try:
        raise ValueError("card 4111 1111 1111 1111 declined")
    except ValueError:
        log.exception("payment failed for LL-2026-100001")
    log.warning("中文也可以：订单已发货")

    text = stream.getvalue()
    for raw in ("alice@", "138 0013", "4111 1111", "LL-2026-100001"):
        assert raw not in text
    first, failed, chinese = _records(stream)  # three records, three lines
    assert set(first) == {"time", "level", "logger", "message", "request_id"}
    assert first["level"] == "INFO"
    assert first["logger"] == "tests.json_logs"
    assert first["message"] == "customer [email] wrote\nfrom [phone]"
    assert first["request_id"] is None  # not in a request
    assert datetime.fromisoformat(str(first["time"])).utcoffset() is not None
    assert failed["level"] == "ERROR"
    assert failed["message"] == "payment failed for [order]"
    assert "ValueError: card [card] declined" in str(failed["exception"])
    assert "Traceback (most recent call last)" in str(failed["exception"])
    assert chinese["message"] == "中文也可以：订单已发货"
    assert "订单" in text  # written as it is, not as \\u escapes


def test_the_text_format_ends_each_line_with_the_request_id(bare_root: Setup) -> None:
    stream = bare_root()
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    line = stream.getvalue().rstrip("\n")
    assert line.endswith(" INFO uvicorn.error: Started server process [4242] request_id=-")


def test_setting_up_again_switches_the_format_and_keeps_one_of_each_filter(
    bare_root: Setup,
) -> None:
    bare_root(log_format="json")
    stream = bare_root(log_format="text")
    (handler,) = logging.getLogger().handlers
    assert handler.get_name() == HANDLER_NAME
    assert sum(isinstance(f, PiiFilter) for f in handler.filters) == 1
    assert sum(isinstance(f, RequestIdFilter) for f in handler.filters) == 1
    logging.getLogger("tests.json_logs").warning("plain again")
    assert stream.getvalue().rstrip("\n").endswith(" plain again request_id=-")


def test_a_request_s_json_lines_carry_its_id(bare_root: Setup, tmp_path: Path) -> None:
    stream = bare_root(log_format="json")
    with TestClient(create_app(fake_settings(tmp_path))) as client:
        r = client.post("/v1/chat", json={"message": "hello"}, headers={HEADER: "json-req-1"})
        assert r.status_code == 200
    records = _records(stream)
    turns = [r for r in records if str(r["message"]).startswith("turn session=")]
    assert len(turns) == 1
    assert turns[0]["request_id"] == "json-req-1"
    assert turns[0]["logger"] == "app.orchestrator"
    ready = next(r for r in records if str(r["message"]).startswith("ShopDesk ready"))
    assert ready["request_id"] is None  # start-up is no request
