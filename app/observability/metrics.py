"""The server's Prometheus instruments, one registry per app.

Each app has a `CollectorRegistry` of its own, not prometheus_client's global default:
tests build many apps in one process, and two instruments of one name in one registry
are an error. Labels are bounded sets only (route templates, status classes, error
codes, outcomes, hand-off reasons), never a raw path or anything a client typed.

What a chat turn measured (its `timings_ms`, the same figures the reply and the
database get) arrives through `turn_finished`, called once per turn by the dialogue
service; the HTTP figures come from `app.observability.asgi`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from app.db.models import OUTCOMES
from app.dialogue.policy import HandoffReason
from app.llm.gate import GenerationGate

# Seconds. A chat reply on a CPU takes seconds to a minute or two; health checks, FAQ
# answers and errors take milliseconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
RETRIEVAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
GENERATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

TURN_OUTCOMES = tuple(sorted(OUTCOMES - {"agent"}))
"""What a bot turn ends as (`agent` is a person's reply, not a turn)."""
HANDOFF_REASONS: tuple[str, ...] = get_args(HandoffReason)


class Metrics:
    """The instruments of one app; `render` is what `GET /metrics` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory, CPU seconds, open files
        r = self.registry
        self.requests = Counter(
            "shopdesk_http_requests",
            "HTTP requests by method, route template, status class and outcome "
            "(ok, or the error code of the one error shape).",
            ["method", "route", "status", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "shopdesk_http_request_duration_seconds",
            "From the request to the last byte of its response (a stream: all of it).",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "shopdesk_llm_queue_depth",
            "Requests waiting for the model (not counting the one it is generating for).",
            registry=r,
        )
        self.generated_tokens = Counter(
            "shopdesk_generated_tokens", "Tokens the model generated for answers.", registry=r
        )
        self.retrieval_seconds = Histogram(
            "shopdesk_retrieval_seconds",
            "Retrieval of a turn (dense + BM25 + fusion, gate and FAQ check).",
            buckets=RETRIEVAL_BUCKETS,
            registry=r,
        )
        self.generation_seconds = Histogram(
            "shopdesk_generation_seconds",
            "The model's answer, from its first prompt token to its last generated one.",
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "shopdesk_first_token_seconds",
            "From the start of the answer step to the first text the customer sees.",
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "shopdesk_answers",
            "Chat turns by outcome, as in the reply's `outcome` (generated = the model "
            "answered from passages).",
            ["outcome"],
            registry=r,
        )
        self.handoffs = Counter(
            "shopdesk_handoffs", "Conversations handed to a person, by reason.", ["reason"],
            registry=r,
        )  # fmt: skip
        for outcome in TURN_OUTCOMES:  # every series exists from the start, at 0
            self.answers.labels(outcome)
        for reason in HANDOFF_REASONS:
            self.handoffs.labels(reason)

    def watch_queue(self, gate: GenerationGate) -> None:
        """Read the queue depth from `gate` at every scrape (the gate is made in the lifespan)."""
        self.queue_depth.set_function(lambda: gate.waiting)

    def turn_finished(
        self, outcome: str, timings_ms: Mapping[str, float], handoff_reason: str | None
    ) -> None:
        """One chat turn: its outcome, its stage timings, the hand-off it opened."""
        self.answers.labels(outcome).inc()
        if handoff_reason is not None:
            self.handoffs.labels(handoff_reason).inc()
        for key, histogram in (
            ("retrieve_ms", self.retrieval_seconds),
            ("generate_ms", self.generation_seconds),
            ("first_token_ms", self.first_token_seconds),
        ):
            if key in timings_ms:
                histogram.observe(timings_ms[key] / 1000)
        tokens = timings_ms.get("generated_tokens", 0.0)
        if tokens > 0:
            self.generated_tokens.inc(tokens)

    def observe_request(
        self, method: str, route: str, status: int, outcome: str, seconds: float
    ) -> None:
        status_class = f"{status // 100}xx"
        self.requests.labels(method, route, status_class, outcome).inc()
        self.request_seconds.labels(method, route, status_class).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
