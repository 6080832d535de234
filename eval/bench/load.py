"""Many shoppers at once against a running server: throughput, latency, and what failed.

Each client sends its messages one after another, each in a new session;
all clients start together. A 503 with `Retry-After` and the JSON error shape
is the queue saying "busy" on purpose and is counted apart from errors;
anything else that is not a 200 is an error.
"""

from __future__ import annotations

import asyncio
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
    def errors(self) -> list[Result]:
        return [r for r in self.results if r not in self.ok and r not in self.busy]

    def as_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "requests": len(self.results),
            "answered": len(self.ok),
            "busy_503": len(self.busy),
            "errors": len(self.errors),
            "error_samples": [f"{r.status}: {r.error}" for r in self.errors[:5]],
            "wall_s": round(self.wall_s, 2),
            "answers_per_s": round(len(self.ok) / self.wall_s, 3) if self.wall_s else 0.0,
            "latency": summary_ms([r.seconds for r in self.ok]),
            "busy_latency": summary_ms([r.seconds for r in self.busy]),
            "outcomes": dict(Counter(r.outcome or "?" for r in self.ok)),
        }


async def _send(client: httpx.AsyncClient, url: str, message: str) -> Result:
    t0 = time.perf_counter()
    try:
        r = await client.post(f"{url}/v1/chat", json={"message": message})
    except httpx.HTTPError as exc:
        return Result(0, time.perf_counter() - t0, error=type(exc).__name__)
    seconds = time.perf_counter() - t0
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 200:
        return Result(200, seconds, outcome=str(body.get("outcome")))
    error = body.get("error") if isinstance(body, dict) else None
    if r.status_code == 503 and isinstance(error, dict) and r.headers.get("retry-after"):
        return Result(503, seconds, error=None)  # the queue's deliberate "busy"
    return Result(r.status_code, seconds, error=r.text[:200])


async def _client(url: str, messages: Sequence[str], timeout_s: float) -> list[Result]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return [await _send(client, url, m) for m in messages]


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
