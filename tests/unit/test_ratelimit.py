"""The chat rate limit: token buckets on a fake clock, memory bounds, and the 429 over HTTP."""

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.ratelimit import RateLimited, TokenBucketLimiter, limiter_for
from app.config import ServerSettings
from app.main import create_app
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_burst_passes_then_the_rate_applies() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=30, burst=3, clock=clock)  # one token every 2 s
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(2.0)
    clock.advance(1.5)
    assert limiter.take("a") == pytest.approx(0.5)  # refused requests spend nothing
    clock.advance(0.5)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(2.0)


def test_refill_is_capped_at_the_burst() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=60, burst=2, clock=clock)
    limiter.take("a")  # one token left
    clock.advance(1.5)  # would be 2.5 tokens uncapped; a bucket holds at most `burst`
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # empty, not 0.5 left over


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=7, burst=1, clock=clock)  # a token every 8.57 s
    limiter.check("a")
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.retry_after_s == 9
    clock.advance(8.4)
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.retry_after_s == 1  # 0.17 s left is still "wait a second"
    clock.advance(0.2)
    limiter.check("a")


def test_clients_are_limited_apart() -> None:
    limiter = TokenBucketLimiter(per_minute=1, burst=1, clock=FakeClock())
    assert limiter.take("10.0.0.1") == 0.0
    assert limiter.take("10.0.0.1") > 0
    assert limiter.take("10.0.0.2") == 0.0


def test_idle_buckets_are_dropped_once_full_again() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=60, burst=5, clock=clock)  # full after 5 s idle
    for i in range(100):
        limiter.take(f"10.0.0.{i}")
    assert len(limiter) == 100
    clock.advance(4.9)
    limiter.take("late")
    assert len(limiter) == 101  # not yet full: dropping them would forgive spent tokens
    clock.advance(0.2)
    limiter.take("later")
    assert len(limiter) == 2  # "late" (0.2 s idle) and "later"


def test_the_table_never_exceeds_max_clients() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=1, burst=1, max_clients=50, clock=clock)
    for i in range(10_000):
        limiter.take(f"client-{i}")
        clock.advance(0.001)
    assert len(limiter) == 50
    # the most recently seen clients are the ones kept, with their spent buckets
    assert limiter.take("client-9999") > 0


def test_a_returning_client_is_kept_over_one_seen_once() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=1, burst=1, max_clients=2, clock=clock)
    limiter.take("regular")
    limiter.take("once")
    limiter.take("regular")  # now the most recent
    limiter.take("new")  # evicts "once", the least recently seen
    assert limiter.take("regular") > 0


def test_threads_never_get_more_than_the_burst() -> None:
    limiter = TokenBucketLimiter(per_minute=1, burst=3000, clock=FakeClock())
    passed: list[float] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        passed.extend(w for w in (limiter.take("shared") for _ in range(1000)) if w == 0.0)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(passed) == 3000


def test_zero_per_minute_switches_it_off() -> None:
    assert limiter_for(ServerSettings(rate_limit_per_minute=0)) is None
    limiter = limiter_for(ServerSettings(rate_limit_per_minute=12, rate_limit_burst=4))
    assert limiter is not None
    assert (limiter.rate, limiter.burst) == (0.2, 4.0)
    with pytest.raises(ValueError, match="per_minute"):
        TokenBucketLimiter(per_minute=0, burst=1)


# --- over HTTP (the real app with fakes) ---------------------------------------------------


def _app(tmp_path: Path, **server: object) -> Iterator[TestClient]:
    settings = fake_settings(
        tmp_path, server={"rate_limit_per_minute": 1, "rate_limit_burst": 2, **server}
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _app(tmp_path)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[TestClient]:
    yield from _app(tmp_path, trust_proxy=True)


def _chat(client: TestClient, path: str = "/v1/chat", **headers: str) -> int:
    return client.post(path, json={"message": "hello"}, headers=headers).status_code


def test_over_the_limit_is_a_429_in_the_error_shape(client: TestClient) -> None:
    assert [_chat(client), _chat(client)] == [200, 200]
    r = client.post("/v1/chat", json={"message": "hello"})
    assert r.status_code == 429
    assert r.json() == {"error": {"code": "rate_limited", "message": r.json()["error"]["message"]}}
    assert 1 <= int(r.headers["retry-after"]) <= 60  # one token a minute
    # the stream shares the bucket and answers 429 before any event is sent
    stream = client.post("/v1/chat/stream", json={"message": "hello"})
    assert stream.status_code == 429
    assert stream.headers["content-type"].startswith("application/json")
    # other routes are not limited
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/search", json={"query": "returns"}).status_code == 200


def test_a_rejected_request_is_limited_before_validation(client: TestClient) -> None:
    _chat(client)
    _chat(client)
    r = client.post("/v1/chat", json={"message": ""})
    assert r.status_code == 429  # no work, not even a 422, for a client over its limit


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(client: TestClient) -> None:
    statuses = [_chat(client, **{"X-Forwarded-For": f"10.0.0.{i}"}) for i in range(3)]
    assert statuses == [200, 200, 429]  # one client (the peer), whatever it claims


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    proxied: TestClient,
) -> None:
    one = [_chat(proxied, **{"X-Forwarded-For": "10.0.0.1"}) for _ in range(3)]
    assert one == [200, 200, 429]
    assert _chat(proxied, **{"X-Forwarded-For": "10.0.0.2"}) == 200
    # the proxy appends the peer it saw: what the client wrote before it does not count
    spoofed = [_chat(proxied, **{"X-Forwarded-For": f"1.2.3.{i}, 10.0.0.1"}) for i in range(2)]
    assert spoofed == [429, 429]
    # nor does a header line of its own before the one the proxy added
    r = proxied.post(
        "/v1/chat",
        json={"message": "hello"},
        headers=[("X-Forwarded-For", "1.2.3.9"), ("X-Forwarded-For", "10.0.0.1")],
    )
    assert r.status_code == 429
