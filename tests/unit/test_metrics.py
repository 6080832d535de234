"""Prometheus metrics: what `/metrics` counts for each request and turn, who may read it,
and that two apps in one process keep their figures apart."""

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.llm.base import Deadline
from app.llm.gate import GenerationGate
from app.main import create_app
from app.observability.asgi import error_code
from app.observability.metrics import HANDOFF_REASONS, TURN_OUTCOMES, Metrics
from tests.support.chunks import policy_chunk, seed
from tests.support.settings import RETRIEVAL, fake_settings

pytestmark = pytest.mark.unit

KEY = "unit-metrics-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return fake_settings(tmp_path, retrieval=RETRIEVAL, **extra)


def _shop(client: TestClient) -> None:
    """One returns passage, so that a returns question retrieves it and the fake model
    answers from it (the FAQ fast path is out of reach at 0.95)."""
    text = "Items can be returned within 30 days of delivery."
    seed(client, [policy_chunk("returns", text, title="Returns")])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path, admin_api_key=KEY))) as test_client:
        _shop(test_client)
        yield test_client


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics` (parsed by prometheus_client's own parser)."""
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_generated_answer_is_counted_with_its_stage_timings(client: TestClient) -> None:
    before = _scrape(client)
    r = client.post("/v1/chat", json={"message": "Can items be returned within 30 days?"})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["outcome"] == "generated", reply
    after = _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"method": "POST", "route": "/v1/chat", "status": "2xx", "outcome": "ok"}
    assert delta("shopdesk_http_requests_total", **ok) == 1
    timed = {k: ok[k] for k in ("method", "route", "status")}
    assert delta("shopdesk_http_request_duration_seconds_count", **timed) == 1
    assert delta("shopdesk_answers_total", outcome="generated") == 1
    assert delta("shopdesk_retrieval_seconds_count") == 1
    assert delta("shopdesk_generation_seconds_count") == 1
    assert delta("shopdesk_first_token_seconds_count") == 1
    # the same figures the reply reports, in seconds
    assert delta("shopdesk_retrieval_seconds_sum") == pytest.approx(
        reply["timings_ms"]["retrieve_ms"] / 1000, abs=1e-3
    )
    tokens = delta("shopdesk_generated_tokens_total")
    assert tokens > 0
    assert tokens == pytest.approx(reply["timings_ms"]["generated_tokens"])
    assert delta("shopdesk_answers_total", outcome="refused") == 0


def test_hand_offs_are_counted_by_reason_and_queued_turns_are_not(client: TestClient) -> None:
    first = client.post("/v1/chat", json={"message": "I want to talk to a human agent"}).json()
    assert first["outcome"] == "handoff", first
    queued = client.post(
        "/v1/chat", json={"message": "hello?", "session_id": first["session_id"]}
    ).json()
    assert queued["outcome"] == "queued", queued
    samples = _scrape(client)
    assert _value(samples, "shopdesk_handoffs_total", reason="requested") == 1
    assert _value(samples, "shopdesk_answers_total", outcome="handoff") == 1
    assert _value(samples, "shopdesk_answers_total", outcome="queued") == 1
    # no model call on either turn
    assert _value(samples, "shopdesk_generation_seconds_count") == 0
    # every outcome and reason is there from the start, at 0
    for outcome in TURN_OUTCOMES:
        assert ("shopdesk_answers_total", (("outcome", outcome),)) in samples
    for reason in HANDOFF_REASONS:
        assert ("shopdesk_handoffs_total", (("reason", reason),)) in samples


def test_routes_are_labelled_by_template_never_by_raw_path(client: TestClient) -> None:
    ids = [uuid.uuid4().hex for _ in range(2)]
    for session_id in ids:
        assert client.get(f"/v1/sessions/{session_id}").status_code == 404
    assert client.get(f"/nowhere/{ids[0]}").status_code == 404
    text = client.get("/metrics", headers=AUTH).text
    for session_id in ids:
        assert session_id not in text
    samples = _scrape(client)
    template = {"method": "GET", "route": "/v1/sessions/{session_id}", "status": "4xx"}
    assert _value(samples, "shopdesk_http_requests_total", **template,
                  outcome="session_not_found") == 2  # fmt: skip
    unknown = {"method": "GET", "route": "unmatched", "status": "4xx", "outcome": "not_found"}
    assert _value(samples, "shopdesk_http_requests_total", **unknown) == 1


def test_outcomes_are_error_codes_and_odd_methods_are_one_label(client: TestClient) -> None:
    assert client.post("/v1/chat", json={"message": 1}).status_code == 422
    assert client.post("/v1/chat", json={"message": "   "}).status_code == 422
    assert client.request("BREW", "/healthz").status_code == 405
    samples = _scrape(client)
    chat = {"method": "POST", "route": "/v1/chat", "status": "4xx"}
    assert _value(samples, "shopdesk_http_requests_total", **chat, outcome="invalid_request") == 1
    assert _value(samples, "shopdesk_http_requests_total", **chat, outcome="empty_message") == 1
    brewed = {"method": "other", "route": "/healthz", "status": "4xx"}
    assert _value(samples, "shopdesk_http_requests_total", **brewed,
                  outcome="method_not_allowed") == 1  # fmt: skip


def test_a_stream_is_counted_once_it_has_ended(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": "Can items be returned within 30 days?"}
    ) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert "[DONE]" in body
    samples = _scrape(client)
    stream = {"method": "POST", "route": "/v1/chat/stream", "status": "2xx", "outcome": "ok"}
    assert _value(samples, "shopdesk_http_requests_total", **stream) == 1
    assert _value(samples, "shopdesk_answers_total", outcome="generated") == 1
    assert _value(samples, "shopdesk_generation_seconds_count") == 1


def test_an_unhandled_error_is_counted_as_a_500(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, admin_api_key=KEY))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken on purpose")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
        samples = _scrape(client)
    crash = {"method": "GET", "route": "/boom", "status": "5xx", "outcome": "internal_error"}
    assert _value(samples, "shopdesk_http_requests_total", **crash) == 1


def test_metrics_need_the_admin_key_unless_made_public(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, admin_api_key=KEY))) as client:
        assert client.get("/metrics").status_code == 401
        wrong = {"X-API-Key": "wrong-key-0123456789"}
        assert client.get("/metrics", headers=wrong).status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    with TestClient(create_app(_settings(tmp_path / "nokey"))) as client:
        assert client.get("/metrics").status_code == 403  # no key configured: off, never open
    public = _settings(tmp_path / "public", server={"metrics_public": True})
    with TestClient(create_app(public)) as client:
        r = client.get("/metrics")
        assert r.status_code == 200
        assert "shopdesk_llm_queue_depth" in r.text
        assert "process_resident_memory_bytes" in r.text


def test_two_apps_in_one_process_keep_their_own_figures(tmp_path: Path) -> None:
    with (
        TestClient(create_app(_settings(tmp_path / "a", admin_api_key=KEY))) as a,
        TestClient(create_app(_settings(tmp_path / "b", admin_api_key=KEY))) as b,
    ):
        for _ in range(3):
            a.get("/healthz")
        b.get("/healthz")
        health = {"method": "GET", "route": "/healthz", "status": "2xx", "outcome": "ok"}
        assert _value(_scrape(a), "shopdesk_http_requests_total", **health) == 3
        assert _value(_scrape(b), "shopdesk_http_requests_total", **health) == 1


def test_the_queue_depth_is_read_from_the_gate_at_each_scrape() -> None:
    metrics = Metrics()

    def depth() -> float | None:
        return metrics.registry.get_sample_value("shopdesk_llm_queue_depth")

    gate = GenerationGate(max_waiting=4, retry_after_s=1)
    metrics.watch_queue(gate)
    seen = [depth()]
    assert gate.acquire(Deadline(30.0))  # a call holds the model

    def wait_turn() -> None:
        assert gate.acquire(Deadline(30.0))
        gate.release()

    waiters = [threading.Thread(target=wait_turn, daemon=True) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    end = time.monotonic() + 5.0
    while gate.waiting < 2 and time.monotonic() < end:  # both queue behind it
        time.sleep(0.001)
    seen.append(depth())
    gate.release()
    for waiter in waiters:
        waiter.join(5.0)
    seen.append(depth())
    assert seen == [0.0, 2.0, 0.0]


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (429, b'{"error": {"code": "rate_limited", "message": "slow down"}}', "rate_limited"),
        (404, b'{"detail": "Not Found"}', "http_404"),  # another shape
        (500, b"Internal Server Error", "http_500"),  # not JSON
        (400, b'{"error": {"code": "Bad Code!", "message": "x"}}', "http_400"),  # not a code
        (400, b'["error"]', "http_400"),
        (413, b'{"error": {"code": "payload_too_l', "http_413"),  # cut off
    ],
)
def test_the_outcome_label_is_a_well_formed_error_code(status: int, body: bytes, code: str) -> None:
    assert error_code(status, body) == code
