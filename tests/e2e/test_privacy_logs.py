"""Personal data never reaches the server's log: customers send theirs, the log is scanned.

The session server writes everything (its own lines, uvicorn's access lines, tracebacks)
to `data_dir / "server.log"`; the test sends English and Chinese messages full of
contacts, card numbers, addresses and order numbers, two of which end in a hand-off
(whose transcript copy is logged) and a bad request with personal data in its URL.
"""

import re
from pathlib import Path

import httpx
import pytest

from tests.support.shopdesk import ADMIN_KEY, ask

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

EN_ORDER = (
    "Hi, where is order LL-2026-100001? My email is wang.fang@example.com "
    "and my phone is +86 138 0000 0001."
)
EN_HANDOFF = (
    "I want to talk to a human agent. My card 4111 1111 1111 1111 was charged twice; "
    "call me on +44 20 7946 0958 or +1 (415) 555-0132, or write to angry.buyer@example.org. "
    "I live at 221B Baker Street, London NW1 6XE."
)
ZH_ORDER = (
    "我的订单LL-2026-100003到哪了？邮箱li.wei@example.com，手机13900000002，"
    "收货地址北京市朝阳区建国路88号SOHO现代城3栋1201室"
)
ZH_COMPLAINT = (
    "你们的快递太慢了，我要投诉！我的电话是0755 1234 5678，"
    "卡号6222 0212 3456 7890 123，地址上海市浦东新区世纪大道100号"
)
BAD_REQUEST_URL = "/v1/chat?email=zhang.san%40example.com&phone=%2B8613700000003"

RAW = [
    "LL-2026-100001",
    "LL-2026-100003",
    "wang.fang@",
    "li.wei@",
    "angry.buyer@",
    "zhang.san",
    "138 0000 0001",
    "13900000002",
    "13700000003",
    "4111 1111 1111 1111",
    "7946 0958",
    "555-0132",
    "1234 5678",
    "6222 0212",
    "Baker Street",
    "建国路88号",
    "1201室",
    "世纪大道",
]


def _log(data_dir: Path) -> str:
    return (data_dir / "server.log").read_text(encoding="utf-8", errors="replace")


def test_the_server_log_holds_no_personal_data(server: str, data_dir: Path) -> None:
    raw = list(RAW)
    sessions, tickets = [], []

    order = ask(server, EN_ORDER)
    sessions.append(str(order["session_id"]))
    handed = ask(server, EN_HANDOFF, session_id=order["session_id"])
    assert handed["outcome"] == "handoff", handed
    tickets.append(str(handed["handoff"]["ticket_id"]))  # type: ignore[index]
    for tracking in re.findall(r"\b[A-Z]{2}\d{10}\b", str(order["answer"])):
        raw.append(tracking)  # the bot's reply is part of the transcript copy

    zh = ask(server, ZH_ORDER)
    sessions.append(str(zh["session_id"]))
    complaint = ask(server, ZH_COMPLAINT)
    assert complaint["outcome"] == "handoff", complaint
    sessions.append(str(complaint["session_id"]))
    tickets.append(str(complaint["handoff"]["ticket_id"]))  # type: ignore[index]

    bad = httpx.post(
        f"{server}{BAD_REQUEST_URL}", json={"message": ZH_ORDER, "lang": "fr"}, timeout=30
    )
    assert bad.status_code == 422, bad.text
    missing = httpx.get(f"{server}/v1/sessions/wang.fang@example.com", timeout=30)
    assert missing.status_code in {404, 422}  # unknown, or not shaped like a session id

    # the agent still gets the conversation as the customer wrote it
    stored = httpx.get(f"{server}/v1/agent/tickets/{tickets[0]}", headers=AUTH, timeout=30)
    assert EN_HANDOFF in [m["text"] for m in stored.json()["messages"]]

    log = _log(data_dir)
    leaked = [s for s in raw if s in log]
    assert not leaked, f"in server.log: {leaked}"

    # what was logged instead: a line per turn, a transcript copy per ticket, access lines
    turns = re.findall(r"INFO app\.orchestrator: turn session=(\w+) .*", log)
    for session in sessions:
        assert session in turns, session
    for ticket in tickets:
        line = next(x for x in log.splitlines() if f"handoff ticket={ticket}" in x)
        assert "transcript=" in line
    assert "[email]" in log
    assert "[phone]" in log
    assert "[card]" in log
    assert "[address]" in log
    assert "[order]" in log
    assert re.search(r'"POST /v1/chat\?email=\[email\]&phone=\[phone\] HTTP/1\.1" 422', log)
    assert re.search(r'"GET /v1/sessions/\[email\] HTTP/1\.1" (404|422)', log)
