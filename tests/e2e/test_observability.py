"""Observability over HTTP: `/metrics` as Prometheus parses it, moving with real turns; the
`X-Request-ID` header on every kind of response; the request id on the server's log lines;
and JSON log lines from `shopdesk serve` when `SHOPDESK_LOG__FORMAT=json`.

The first three use the session server (the real model); the last starts a server of its
own on the deterministic fakes, which is enough to see what its log lines look like.
"""

import json
import os
import re
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import shopdesk_server
from tests.support.shopdesk import ADMIN_KEY, ask

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
HEADER = "X-Request-ID"
GENERATED = re.compile(r"[0-9a-f]{32}")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> Samples:
    r = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_a_chat_turn_and_a_hand_off(server: str) -> None:
    assert httpx.get(f"{server}/metrics", timeout=30).status_code == 401  # the admin key
    before = _scrape(server)
    reply = ask(server, "How long is the warranty on earbuds?")
    handed = ask(server, "I want to talk to a human agent, please.")
    after = _scrape(server)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"method": "POST", "route": "/v1/chat", "status": "2xx", "outcome": "ok"}
    assert delta("shopdesk_http_requests_total", **ok) == 2
    assert delta("shopdesk_http_request_duration_seconds_count", method="POST",
                 route="/v1/chat", status="2xx") == 2  # fmt: skip
    assert reply["outcome"] in {"generated", "faq", "refused"}, reply
    assert delta("shopdesk_answers_total", outcome=str(reply["outcome"])) == 1
    assert delta("shopdesk_retrieval_seconds_count") == 1  # the hand-off retrieves nothing
    # the model's figures are those the reply reports
    timings: dict[str, float] = reply["timings_ms"]  # type: ignore[assignment]
    generated = 1 if "generate_ms" in timings else 0
    assert delta("shopdesk_generation_seconds_count") == generated
    assert delta("shopdesk_generated_tokens_total") == timings.get("generated_tokens", 0)
    assert handed["outcome"] == "handoff", handed
    assert delta("shopdesk_handoffs_total", reason="requested") == 1
    assert delta("shopdesk_answers_total", outcome="handoff") == 1
    assert _value(after, "shopdesk_llm_queue_depth") == 0  # nothing waits now
    assert _value(after, "process_resident_memory_bytes") > 0


def test_every_response_carries_a_request_id(server: str) -> None:
    made = [httpx.get(f"{server}/healthz", timeout=30).headers[HEADER] for _ in range(2)]
    assert all(GENERATED.fullmatch(m) for m in made)
    assert made[0] != made[1]

    sent = f"e2e-obs-{uuid.uuid4().hex[:12]}"
    checks = [
        ("GET", "/healthz", None, 200),
        ("GET", "/metrics", None, 401),
        ("GET", "/v1/sessions/nobody-has-this-session", None, 404),
        ("POST", "/v1/chat", {"message": ""}, 422),
    ]
    for method, path, body, status in checks:
        r = httpx.request(method, f"{server}{path}", json=body, headers={HEADER: sent}, timeout=30)
        assert r.status_code == status, (path, r.text)
        assert r.headers.get(HEADER) == sent, (path, r.headers)

    replaced = httpx.get(f"{server}/healthz", headers={HEADER: "not a sane id!"}, timeout=30)
    assert GENERATED.fullmatch(replaced.headers[HEADER])

    with httpx.stream(
        "POST",
        f"{server}/v1/chat/stream",
        json={"message": "hello"},
        headers={HEADER: sent + "-stream"},
        timeout=300,
    ) as r:
        assert r.status_code == 200
        assert r.headers[HEADER] == sent + "-stream"
        assert "data: [DONE]" in r.read().decode()


def _records(log: str) -> list[str]:
    """The log split into records: a record starts with a timestamp; a traceback or a
    message with line breaks continues it."""
    starts = [m.start() for m in re.finditer(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", log, re.M)]
    return [log[a:b] for a, b in zip(starts, [*starts[1:], len(log)], strict=True)]


def test_the_server_log_lines_carry_the_request_id(server: str, data_dir: Path) -> None:
    rid = f"e2e-log-{uuid.uuid4().hex[:12]}"
    r = httpx.post(f"{server}/v1/chat", json={"message": "hello"}, headers={HEADER: rid},
                   timeout=300)  # fmt: skip
    assert r.status_code == 200, r.text
    ours = [
        line
        for line in (data_dir / "server.log").read_text(encoding="utf-8").splitlines()
        if line.endswith(f" request_id={rid}")
    ]
    assert any(" INFO app.orchestrator: turn session=" in line for line in ours), ours
    assert any('"POST /v1/chat HTTP/1.1" 200' in line for line in ours), ours  # uvicorn's
    # every record the server wrote, in a request or not, ends its first line with an id
    records = _records((data_dir / "server.log").read_text(encoding="utf-8"))
    assert records
    missing = [rec for rec in records if not re.search(r" request_id=\S+$", rec.split("\n")[0])]
    assert not missing, missing[:5]


FAKES = {
    "SHOPDESK_LLM__BACKEND": "fake",
    "SHOPDESK_EMBEDDING__BACKEND": "fake",
    "SHOPDESK_STORE__BACKEND": "memory",
    "SHOPDESK_DIALOGUE__INTENT_BACKEND": "fake",
    "SHOPDESK_LOG__FORMAT": "json",
}


def _fake_server(data_dir: Path, log: Path) -> AbstractContextManager[str]:
    """`shopdesk serve` on the fakes (no model, no documents: ready in seconds)."""
    env = {**os.environ, **FAKES, "SHOPDESK_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    return shopdesk_server(env, log, probe="/healthz", timeout_s=120, poll_s=0.5)


def test_json_logs_from_the_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with _fake_server(tmp_path / "shop", log) as url:
        r = httpx.post(
            f"{url}/v1/chat",
            json={"message": "hello, my email is zhang.san@example.com"},
            headers={HEADER: "e2e-json-1"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
    text = log.read_text(encoding="utf-8")
    assert "zhang.san" not in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    ours = [r for r in records if r["request_id"] == "e2e-json-1"]
    assert {r["logger"] for r in ours} >= {"app.orchestrator", "uvicorn.access"}, ours
    access = next(r for r in ours if r["logger"] == "uvicorn.access")
    assert '"POST /v1/chat HTTP/1.1" 200' in access["message"]
    assert any(r["request_id"] is None and r["logger"] == "app.main" for r in records)
