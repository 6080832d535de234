"""Many shoppers at once against a running server: throughput, latency, and what failed.

Each client sends its messages one after another, each in a new session;
all clients start together. A 503 with `Retry-After` and the JSON error shape
is the queue saying "busy" on purpose, a 429 likewise the per-client rate
limit, and a 504 `model_timeout` the model's deadline (`llm.timeout_s`, from
joining the queue) passing: all three are counted apart from errors; anything
else that is not a 200 is an error, and a request with no HTTP answer at all
(status 0) is lost.
`send` is one request of either chat route; `python -m eval.loadtest` drives it
for minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from eval.bench.stats import summary_ms


@dataclass
class Result:
    status: int
    seconds: float
    outcome: str | None = None
    error: str | None = None
    retry_after_s: int | None = None  # a deliberate 429 or 503 says when to come back


@dataclass
class LoadReport:
    clients: int
    wall_s: float
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> list[Result]:
        return [r for r in self.results if r.status == 200]

    @property
    def busy(self) -> list[Result]:
        return [r for r in self.results if r.status == 503 and r.error is None]

    @property
    def limited(self) -> list[Result]:
        return [r for r in self.results if r.status == 429 and r.error is None]

    @property
    def timed_out(self) -> list[Result]:
        return [r for r in self.results if r.status == 504 and r.error is None]

    @property
    def errors(self) -> list[Result]:
        return [r for r in self.results if not deliberate(r)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "requests": len(self.results),
            "answered": len(self.ok),
            "busy_503": len(self.busy),
            "limited_429": len(self.limited),
            "deadline_504": len(self.timed_out),
            "errors": len(self.errors),
            "error_samples": [f"{r.status}: {r.error}" for r in self.errors[:5]],
            "wall_s": round(self.wall_s, 2),
            "answers_per_s": round(len(self.ok) / self.wall_s, 3) if self.wall_s else 0.0,
            "latency": summary_ms([r.seconds for r in self.ok]),
            "busy_latency": summary_ms([r.seconds for r in self.busy]),
            "outcomes": dict(Counter(r.outcome or "?" for r in self.ok)),
        }


DELIBERATE = (429, 503, 504)
"""Statuses the server gives on purpose: rate limited, busy, past the model's deadline."""


def deliberate(result: Result) -> bool:
    """An answer, or a refusal the server chose to give (`DELIBERATE`)."""
    return result.status == 200 or (result.status in DELIBERATE and result.error is None)


async def send(
    client: httpx.AsyncClient,
    url: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> Result:
    """One chat turn in a new session, over `/v1/chat` or `/v1/chat/stream`, classified."""
    t0 = time.perf_counter()
    path = "/v1/chat/stream" if stream else "/v1/chat"
    try:
        async with client.stream(
            "POST", f"{url}{path}", json={"message": message}, headers=headers
        ) as r:
            if r.status_code == 200 and stream:
                return await _read_events(r, t0)
            await r.aread()
    except httpx.HTTPError as exc:
        return Result(0, time.perf_counter() - t0, error=type(exc).__name__)
    seconds = time.perf_counter() - t0
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 200:
        return Result(200, seconds, outcome=str(body.get("outcome")))
    error = body.get("error") if isinstance(body, dict) else None
    retry = r.headers.get("retry-after", "")
    if r.status_code in (429, 503) and isinstance(error, dict) and retry.isdigit():
        return Result(r.status_code, seconds, retry_after_s=int(retry))  # on purpose
    if r.status_code == 504 and isinstance(error, dict) and error.get("code") == "model_timeout":
        return Result(504, seconds)  # the deadline, on purpose
    return Result(r.status_code, seconds, error=r.text[:200])


async def _read_events(r: httpx.Response, t0: float) -> Result:
    """A stream is answered when it ends with `[DONE]` after a `done` event; an `error`
    event "busy" is the queue's 503 sent after the 200, "model_timeout" its deadline's
    504; one that stops early is lost."""
    event, outcome, failure = "", None, None
    async for line in r.aiter_lines():
        if not line.strip():
            event = ""
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
            if data == "[DONE]":
                seconds = time.perf_counter() - t0
                if failure == "busy":
                    return Result(503, seconds)
                if failure == "model_timeout":
                    return Result(504, seconds)
                if failure is not None or outcome is None:
                    return Result(502, seconds, error=f"stream error: {failure}")
                return Result(200, seconds, outcome=outcome)
            if event == "done":
                outcome = str(json.loads(data).get("outcome"))
            elif event == "error":
                failure = str(json.loads(data).get("error", {}).get("code"))
    return Result(0, time.perf_counter() - t0, error="stream ended without [DONE]")


async def _client(url: str, messages: Sequence[str], timeout_s: float) -> list[Result]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return [await send(client, url, m) for m in messages]


async def run_load(
    url: str, per_client: Sequence[Sequence[str]], *, timeout_s: float = 600.0
) -> LoadReport:
    """Start one client per message list at the same moment; wait for all of them."""
    t0 = time.perf_counter()
    batches = await asyncio.gather(*(_client(url, msgs, timeout_s) for msgs in per_client))
    report = LoadReport(len(per_client), time.perf_counter() - t0)
    report.results = [r for batch in batches for r in batch]
    return report


def workload(messages: Sequence[str], clients: int, per_client: int) -> list[list[str]]:
    """Deal the messages round-robin so every client gets a different mix."""
    return [
        [messages[(c * per_client + i) % len(messages)] for i in range(per_client)]
        for c in range(clients)
    ]
