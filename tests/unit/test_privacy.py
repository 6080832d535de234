"""Personal data masked in logs: the patterns (both ways), the logging filter, the turn lines."""

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.logs import LOG_FORMAT, MaskingFormatter, PiiFilter, setup_logging
from app.main import create_app
from app.privacy import mask_pii
from tests.support.paths import ROOT
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit

SAMPLE = ROOT / "data" / "sample_shop"
KEY = "test-admin-key-0123456789"


@pytest.mark.parametrize(
    ("text", "secret", "placeholder"),
    [
        ("mail me at alice.smith+shop@example.co.uk please", "alice.smith", "[email]"),
        ("我的邮箱是wang.fang@example.com谢谢", "wang.fang@example.com", "[email]"),
        ("电话13800138000", "13800138000", "[phone]"),
        ("手机：138 0013 8000，谢谢", "138 0013 8000", "[phone]"),
        ("call +86 138 0000 0001 after six", "138 0000 0001", "[phone]"),
        ("+8613800138000", "13800138000", "[phone]"),
        ("0086-138-0013-8000", "138-0013-8000", "[phone]"),
        ("(+86) 13800138000", "13800138000", "[phone]"),
        ("座机010-12345678", "12345678", "[phone]"),
        ("办公室 0755 1234 5678", "1234 5678", "[phone]"),
        ("call +44 20 7946 0958 now", "7946 0958", "[phone]"),
        ("0044 20 7946 0958", "7946 0958", "[phone]"),
        ("reach me on +1 (415) 555-0132", "555-0132", "[phone]"),
        ("or 415-555-0132 or (415) 555-0132", "555-0132", "[phone]"),
        ("UK mobile 07911 123456", "123456", "[phone]"),
        ("my phone number is 81234567", "81234567", "[phone]"),
        ("订单LL-2026-100001的物流", "LL-2026-100001", "[order]"),
        ("order ll-2026-100003 please", "100003", "[order]"),
        ("card 4111 1111 1111 1111 exp 12/27", "1111 1111", "[card]"),
        ("卡号4111-1111-1111-1111", "4111-1111", "[card]"),
        ("4111111111111111", "4111111111111111", "[card]"),
        ("amex 3782 822463 10005", "822463", "[card]"),
        ("银联 6222 0212 3456 7890 123", "7890 123", "[card]"),
        ("I live at 221B Baker Street, London NW1 6XE", "Baker", "[address]"),
        ("1600 Amphitheatre Pkwy, Mountain View, CA 94043", "Amphitheatre", "[address]"),
        ("ship to 350 5th Ave, New York", "5th Ave", "[address]"),
        ("10 downing street", "downing", "[address]"),
        ("上海市浦东新区世纪大道100号", "世纪大道", "[address]"),
        ("我的地址是上海市浦东新区世纪大道100号，请尽快", "浦东新区", "[address]"),
        ("北京市朝阳区建国路88号SOHO现代城3栋1201室", "1201", "[address]"),
        ("寄到杭州市西湖区文三路 478 号", "文三路", "[address]"),
        ("我住在朝阳区望京街道10号院3号楼2单元501", "501", "[address]"),
        ("上海市浦东新区世纪大道１００号", "世纪大道", "[address]"),
        ("tracking SF0000000001", "SF0000000001", "[tracking]"),
        ('"GET /v1/chat?email=alice%40example.com HTTP/1.1" 200', "alice", "[email]"),
        ("GET /v1/x?phone=%2B86+138+0000+0001&lang=zh", "0001", "[phone]"),
        ("'first line\\n13800138000'", "13800138000", "[phone]"),  # a repr'd newline
    ],
)
def test_personal_data_is_replaced_by_its_placeholder(
    text: str, secret: str, placeholder: str
) -> None:
    masked = mask_pii(text)
    assert secret not in masked
    assert placeholder in masked
    assert mask_pii(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "¥1299",
        "$49.99 or ¥1,299.00",
        "运费30元，满299包邮",
        "LL-HP-001 and LL-TE-002 are in stock",
        "RMA-7F3K2Q9M created",
        "placed 2026-10-16, delivered 2026-10-20",
        "2026-10-16T12:34:56.789Z",
        "2026-10-16T12:34:56+08:00",
        "2026-10-16 12:34:56,789 INFO app.main: ShopDesk ready: 412 chunks in the store",
        "turn total_ms=3920.5 retrieve took 1234.5 ms",
        "session 3f2a9c1b4e5d4f6a8b7c9d0e1f2a3b4c",
        "123e4567-e89b-12d3-a456-426614174000",
        "12345678-1234-1234-1234-123456789012",
        '127.0.0.1:54321 - "POST /v1/chat HTTP/1.1" 200',
        '127.0.0.1:54322 - "GET /v1/sessions/3f2a9c1b4e5d4f6a HTTP/1.1" 404',
        "Started server process [12345]",
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "pi is 3.14159265358979323",
        "unix time 1760601600",
        "I bought 2 red shoes way too small",
        "3 items from your store on Main Street",
        "+1 day",
        "我在上海市",
        "北京市朝阳区",
        "超市渠道",
        "10月3号到货",
        "我不知道怎么办",
        "寄到香港的运费是多少？",
        "[email] [phone] [order] [card] [address] [tracking]",
    ],
)
def test_what_makes_logs_useful_is_left_alone(text: str) -> None:
    assert mask_pii(text) == text


def test_every_contact_and_order_of_the_sample_shop_is_masked() -> None:
    secrets: set[str] = set()
    for line in (SAMPLE / "orders.jsonl").read_text(encoding="utf-8").splitlines():
        order = json.loads(line)
        secrets |= {order["order_id"], order["customer"]["email"], order["customer"]["phone"]}
        if order.get("tracking_number"):
            secrets.add(order["tracking_number"])
    assert len(secrets) > 10
    for secret in secrets:
        for text in (secret, f"mine is {secret}.", f"我的是{secret}，谢谢"):
            masked = mask_pii(text)
            assert secret not in masked, masked
            digits = re.sub(r"\D", "", secret)
            assert not digits or digits not in re.sub(r"\D", "", masked), masked


def test_the_sample_catalogue_is_left_alone() -> None:
    skus, prices = [], []
    for line in (SAMPLE / "kb" / "products.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        found = re.findall(r"\bLL-[A-Z]{2}-\d{3}\b", json.dumps(row, ensure_ascii=False))
        skus += found
        prices += [str(v) for k, v in _walk(row) if "price" in k]
    assert skus
    assert prices
    for text in [*skus, *prices, *(f"¥{p}" for p in prices)]:
        assert mask_pii(text) == text


def _walk(node: object, key: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    else:
        yield key, node


def test_the_shops_own_order_pattern_is_used() -> None:
    pattern = r"(?<![A-Za-z0-9])ORD\d{8}(?!\d)"
    assert mask_pii("ORD20261016", order_id_pattern=pattern) == "[order]"
    assert mask_pii("LL-2026-100001", order_id_pattern=pattern) != "[order]"


def test_the_filter_masks_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))  # a plain formatter: the filter suffices
    handler.addFilter(PiiFilter())
    log = logging.getLogger("tests.privacy.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("customer %s wrote from %s", "alice@example.com", "+86 138 0013 8000")
        try:
            raise ValueError("card 4111 1111 1111 1111 declined for LL-2026-100001")
        except ValueError:
            log.exception("payment failed for %s", "bob@example.org")
        log.info("stack", stack_info=True, extra={"x": 1})
        log.warning("two %s %s", "only-one")  # a malformed call must not raise
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    for raw in ("alice@", "138 0013", "4111 1111", "LL-2026-100001", "bob@"):
        assert raw not in out
    assert "customer [email] wrote from [phone]" in out
    assert "ValueError: card [card] declined for [order]" in out
    assert "Traceback (most recent call last)" in out
    assert "only-one" in out  # what the malformed call said is kept, masked


def test_the_formatter_masks_a_traceback_on_its_own() -> None:
    try:
        raise RuntimeError("no address 221B Baker Street")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = MaskingFormatter(LOG_FORMAT).format(record)
    assert "Baker" not in text
    assert "RuntimeError: no address [address]" in text


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    """setup_logging on a bare root logger, writing to a string; everything restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved_uvicorn = {n: (list(lg.handlers), lg.propagate) for n, lg in uvicorn.items()}
    root.handlers.clear()
    uvicorn["uvicorn.access"].addHandler(logging.StreamHandler(io.StringIO()))  # as dictConfig
    uvicorn["uvicorn"].propagate = False
    stream = io.StringIO()
    try:
        setup_logging()
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (handlers, propagate) in saved_uvicorn.items():
            uvicorn[name].handlers[:] = handlers
            uvicorn[name].propagate = propagate


def test_uvicorn_lines_go_through_the_masked_root_handler(root_logging: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:54321",
        "GET",
        "/v1/sessions/abc?email=alice%40example.com&phone=13800138000",
        "1.1",
        404,
    )
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    out = root_logging.getvalue()
    assert "alice" not in out
    assert "13800138000" not in out
    assert (
        '127.0.0.1:54321 - "GET /v1/sessions/abc?email=[email]&phone=[phone] HTTP/1.1" 404' in out
    )
    assert "INFO uvicorn.error: Started server process [4242]" in out
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO uvicorn\.access: ", out, re.M)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(fake_settings(tmp_path, admin_api_key=KEY))) as test_client:
        yield test_client


def test_turn_and_handoff_lines_are_masked_but_the_ticket_is_not(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.orchestrator")
    first = "Hello, my email is alice@example.com and I live at 221B Baker Street"
    r = client.post("/v1/chat", json={"message": first})
    assert r.status_code == 200, r.text
    session = r.json()["session_id"]
    second = "我要转人工，电话13800138000，地址上海市浦东新区世纪大道100号"
    r = client.post("/v1/chat", json={"message": second, "session_id": session})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "handoff"
    ticket = r.json()["handoff"]["ticket_id"]

    lines = [rec.getMessage() for rec in caplog.records if rec.name == "app.orchestrator"]
    turns = [line for line in lines if line.startswith("turn ")]
    assert len(turns) == 2
    assert f"session={session}" in turns[0]
    assert "outcome=handoff" in turns[1]
    assert "[email]" in turns[0]
    assert "[address]" in turns[0]
    assert "[phone]" in turns[1]
    (handoff,) = [line for line in lines if line.startswith("handoff ")]
    assert f"ticket={ticket}" in handoff
    assert "reason=requested" in handoff
    assert "messages=4" in handoff
    assert handoff.count("[address]") >= 2
    log = "\n".join(lines)
    for raw in ("alice@", "Baker", "13800138000", "世纪大道"):
        assert raw not in log

    # the agent who takes over reads the conversation as the customer wrote it
    stored = client.get(f"/v1/agent/tickets/{ticket}", headers={"X-API-Key": KEY}).json()
    assert [m["text"] for m in stored["messages"] if m["role"] == "user"] == [first, second]


def test_a_long_message_is_masked_before_it_is_cut(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.orchestrator")
    message = "x" * 190 + " card 4111 1111 1111 1111 thanks"  # the cut falls inside the number
    assert client.post("/v1/chat", json={"message": message}).status_code == 200
    (turn,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("turn ")]
    assert "4111" not in turn
    assert "1111" not in turn
    assert "…" in turn
