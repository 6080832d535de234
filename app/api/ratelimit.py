"""Per-client rate limits on the chat routes: a token bucket per client address.

Each client may send `burst` requests at once and `per_minute` sustained; over
that it gets a 429 in the one error shape with `Retry-After` (whole seconds
until its bucket holds a token again). The limit protects the model queue from
one client: a shopper types a few messages a minute, a script hundreds.

Memory is bounded. A bucket idle long enough to be full again is the same as
no bucket, so it is dropped; past `max_clients` the least recently seen client
is dropped too (it starts again with a full bucket, which errs on the side of
the shopper). The table is guarded by a lock: the dependency runs on the event
loop, and tests or other apps may call it from threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.errors import error_response
from app.config import ServerSettings

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    seen: float  # the clock when tokens was last brought up to date


class RateLimited(Exception):
    """A client over its limit; `retry_after_s` is when its next request would pass."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class TokenBucketLimiter:
    """Token buckets keyed by client; `clock` is monotonic seconds (a fake one in tests)."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("per_minute > 0, burst >= 1 and max_clients >= 1 are required")
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = float(burst)
        self.max_clients = max_clients
        self.refill_s = self.burst / self.rate  # an idle bucket is full again after this
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise RateLimited with the seconds to wait."""
        wait = self.take(key)
        if wait > 0:
            raise RateLimited(max(1, math.ceil(wait)))

    def take(self, key: str) -> float:
        """0.0 when the request may pass (a token is spent), else the seconds until one may."""
        with self._lock:
            now = self._clock()
            self._evict_idle(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
                if len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.seen) * self.rate)
                bucket.seen = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely; the oldest are first in the table."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.seen < self.refill_s:
                return
            self._buckets.popitem(last=False)


def client_key(request: Request, trust_proxy: bool) -> str:
    """The client's address: the peer, or behind a trusted proxy the last X-Forwarded-For
    entry, the one that proxy appended (earlier entries are whatever the client sent)."""
    if trust_proxy:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))  # in order sent
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.client.host if request.client else "unknown"


def limiter_for(server: ServerSettings) -> TokenBucketLimiter | None:
    """The chat routes' limiter, or None when `rate_limit_per_minute` is 0 (off)."""
    if server.rate_limit_per_minute == 0:
        return None
    return TokenBucketLimiter(server.rate_limit_per_minute, server.rate_limit_burst)


def install(app: FastAPI, server: ServerSettings) -> None:
    """Put the app's limiter on `app.state` and map RateLimited to a 429."""
    app.state.rate_limiter = limiter_for(server)

    @app.exception_handler(RateLimited)
    async def _limited(_: Request, exc: RateLimited) -> JSONResponse:
        return error_response(
            429, "rate_limited", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        )


async def rate_limit(request: Request) -> None:
    """Route dependency: spend one of this client's tokens or answer 429. It runs on the
    event loop (no thread hop): the lock is held for a few dictionary operations."""
    limiter: TokenBucketLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.check(client_key(request, request.app.state.settings.server.trust_proxy))
