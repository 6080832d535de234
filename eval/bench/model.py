"""ShopDesk's answer path against the bare llama.cpp call, in one process, on one model.

For each question that needs the model, the same prompt runs twice, in
alternating order per round:
- ShopDesk: `POST /v1/chat/stream` through the app (session, intent, retrieval,
  prompt packing, the queue, streaming, citation check, database writes);
- bare: `Llama.create_chat_completion` on the exact messages ShopDesk sent,
  with the same sampling and `max_tokens`, so the output is the same text.
Before each run the context is set back to the same state: the fixed prompt
prefix cached, nothing after it. The bare run's time to first token is then
the model's processing of the uncached part of the prompt (plus one token).

FAQ questions are timed through `POST /v1/chat` twice: first wording (the query
vector computed) and the same wording again (the query vector remembered).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any, cast

from fastapi.testclient import TestClient

from app.config import Settings
from app.llm.base import ChatMessage, Deadline
from app.llm.llamacpp import LlamaCppLLM
from app.main import create_app
from eval.bench.stats import ratio, summary_ms


@dataclass
class _Call:
    messages: list[ChatMessage]
    max_tokens: int
    text: str = ""


@dataclass
class Recorder:
    """The real model, remembering what ShopDesk asked of it."""

    inner: LlamaCppLLM
    calls: list[_Call] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self.inner.warm(messages)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        call = _Call(list(messages), max_tokens)
        self.calls.append(call)
        for piece in self.inner.stream(
            messages, max_tokens=max_tokens, stop=stop, deadline=deadline
        ):
            call.text += piece
            yield piece


@dataclass
class Timing:
    first_s: float
    total_s: float
    text: str


def reset_to_prefix(llm: LlamaCppLLM, messages: Sequence[ChatMessage]) -> int:
    """Forget the live context, then put back only the prompt's cached fixed prefix."""
    with llm.lock:
        llm.llama.n_tokens = 0
    llm.warm(messages)
    return len(llm.prefix_tokens(messages))


def bare(llm: LlamaCppLLM, settings: Settings, call: _Call) -> Timing:
    """The plain llama-cpp-python call a developer would write, on the same prompt."""
    payload: list[Any] = [{"role": m.role, "content": m.content} for m in call.messages]
    t0 = time.perf_counter()
    first, pieces = 0.0, []
    with llm.lock:
        chunks = llm.llama.create_chat_completion(
            payload,
            max_tokens=call.max_tokens,
            temperature=settings.llm.temperature,
            seed=settings.llm.seed,
            stream=True,
        )
        for chunk in cast(Iterator[dict[str, Any]], chunks):
            piece = chunk["choices"][0]["delta"].get("content")
            if isinstance(piece, str) and piece:
                first = first or time.perf_counter() - t0
                pieces.append(piece)
    return Timing(first, time.perf_counter() - t0, "".join(pieces))


def shopdesk(client: TestClient, question: str) -> tuple[Timing, dict[str, Any]]:
    """One turn over the SSE route, timed at the client."""
    t0 = time.perf_counter()
    first, done, event = 0.0, {}, ""
    with client.stream("POST", "/v1/chat/stream", json={"message": question}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.strip():
                event = ""  # an event ends at a blank line
            elif line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "token":
                first = first or time.perf_counter() - t0
            elif line.startswith("data:") and event == "done":
                done = json.loads(line.split(":", 1)[1])
    return Timing(first, time.perf_counter() - t0, str(done.get("answer", ""))), done


def generated(
    settings: Settings,
    llm: LlamaCppLLM,
    client: TestClient,
    rec: Recorder,
    questions: list[str],
    limit: int,
) -> dict[str, Any]:
    """End-to-end time and time to first token against the bare call, per question."""
    items: list[dict[str, Any]] = []
    answers = client.app.state.container.answers  # type: ignore[attr-defined]
    for q in questions:
        if len(items) >= limit:
            break
        if answers.plan(q).direct is not None:
            continue  # answered without the model (FAQ or weak evidence)
        rec.calls.clear()
        _, done = shopdesk(client, q)  # learn the prompt ShopDesk builds for q
        if done.get("outcome") != "generated" or len(rec.calls) != 1:
            continue
        if (done.get("sentiment") or {}).get("label") == "negative":
            continue  # an apology is streamed before the model: not a fair first token
        call = rec.calls[0]
        row: dict[str, Any] = {"question": q, "ours": [], "bare": [], "same_text": True}
        for rnd in range(2):
            for side in ("ours", "bare") if rnd % 2 == 0 else ("bare", "ours"):
                cached = reset_to_prefix(llm, call.messages)
                if side == "ours":
                    rec.calls.clear()
                    timing, _ = shopdesk(client, q)
                    row["same_text"] &= bool(rec.calls) and rec.calls[0].text == call.text
                else:
                    timing = bare(llm, settings, call)
                    row["same_text"] &= timing.text == call.text
                row[side].append(timing)
        row["prompt_tokens"] = sum(llm.count_tokens(m.content) for m in call.messages)
        row["cached_tokens"] = cached
        row["output_tokens"] = llm.count_tokens(call.text)
        items.append(row)
    return _summarise(items)


def _summarise(items: list[dict[str, Any]]) -> dict[str, Any]:
    ours_total = [t.total_s for it in items for t in it["ours"]]
    bare_total = [t.total_s for it in items for t in it["bare"]]
    ours_first = [t.first_s for it in items for t in it["ours"]]
    bare_first = [t.first_s for it in items for t in it["bare"]]
    per_item = [
        median(o.total_s / b.total_s for o, b in zip(it["ours"], it["bare"], strict=True))
        for it in items
    ]
    return {
        "questions": len(items),
        "runs_per_side": len(ours_total),
        "identical_output": sum(1 for it in items if it["same_text"]),
        "prompt_tokens_mean": round(sum(it["prompt_tokens"] for it in items) / len(items), 1)
        if items
        else 0,
        "cached_prefix_tokens": items[0]["cached_tokens"] if items else 0,
        "output_tokens_mean": round(sum(it["output_tokens"] for it in items) / len(items), 1)
        if items
        else 0,
        "ours_total": summary_ms(ours_total),
        "bare_total": summary_ms(bare_total),
        "overhead": ratio(sum(ours_total) - sum(bare_total), sum(bare_total)),
        "overhead_median_per_question": round(median(per_item) - 1, 4) if per_item else None,
        "ours_first_token": summary_ms(ours_first),
        "bare_uncached_prompt": summary_ms(bare_first),
        "first_token_ratio": ratio(sum(ours_first), sum(bare_first)),
    }


def faq(client: TestClient, questions: list[str]) -> dict[str, Any]:
    """FAQ answers through the JSON route: new wording, then the same wording again."""
    cold: list[float] = []
    warm: list[float] = []
    for q in questions:
        for bucket in (cold, warm):
            t0 = time.perf_counter()
            body = client.post("/v1/chat", json={"message": q}).json()
            seconds = time.perf_counter() - t0
            if body.get("outcome") != "faq":
                break
            bucket.append(seconds)
    embedder = client.app.state.container.embedder.inner  # type: ignore[attr-defined]
    embed: list[float] = []
    for q in questions:  # the one model call of a new wording, alone
        t0 = time.perf_counter()
        embedder.embed_query(q + "?")
        embed.append(time.perf_counter() - t0)
    return {
        "cold": summary_ms(cold),
        "repeat": summary_ms(warm),
        "query_embedding": summary_ms(embed),
    }


def run(
    settings: Settings, generated_questions: list[str], faq_questions: list[str], limit: int
) -> dict[str, Any]:
    from app.container import build_llm

    llm = build_llm(settings)
    assert isinstance(llm, LlamaCppLLM), "the benchmark needs the llama.cpp backend"
    rec = Recorder(llm)
    with TestClient(create_app(settings, llm=rec)) as client:
        result = {"generated": generated(settings, llm, client, rec, generated_questions, limit)}
        result["faq"] = faq(client, faq_questions)
    gen_p50 = result["generated"]["ours_total"]["p50_ms"]
    result["faq"]["vs_generated_p50"] = ratio(result["faq"]["cold"]["p50_ms"], gen_p50)
    result["llm"] = {
        "model": llm.name,
        "n_gpu_layers": settings.llm.n_gpu_layers,
        "gpu_offload": _gpu_offload(),
    }
    return result


def _gpu_offload() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def rows(result: dict[str, Any]) -> list[list[str]]:
    g, f = result["generated"], result["faq"]
    return [
        [
            "answer end to end vs bare llama.cpp",
            f"{g['ours_total']['p50_ms']:.0f} / {g['bare_total']['p50_ms']:.0f} ms p50",
            f"overhead {g['overhead'] * 100:+.1f} % ({g['questions']} questions x "
            f"{g['runs_per_side'] // max(g['questions'], 1)}, {g['identical_output']} same text)",
        ],
        [
            "first token vs bare uncached prompt",
            f"{g['ours_first_token']['p50_ms']:.0f} / {g['bare_uncached_prompt']['p50_ms']:.0f}"
            " ms p50",
            f"ratio {g['first_token_ratio']:.3f}; prompt {g['prompt_tokens_mean']:.0f} tokens, "
            f"{g['cached_prefix_tokens']} cached",
        ],
        [
            "FAQ fast path (new wording)",
            f"{f['cold']['p50_ms']:.1f} ms p50",
            f"p95 {f['cold']['p95_ms']:.1f} ms; query embedding "
            f"{f['query_embedding']['p50_ms']:.1f} ms; {f['vs_generated_p50']:.4f} x generated",
        ],
        ["FAQ fast path (repeated wording)", f"{f['repeat']['p50_ms']:.1f} ms p50", ""],
    ]
