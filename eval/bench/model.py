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

ShopDesk streams checked sentences only, so its first `token` event is its first
checked sentence. Both are timed: the first `token` event at the client, and the
model's own first token on the same clock (the recorder sees it in-process; the
`done` event's `timings_ms.first_token_ms` / `first_sentence_ms` are the server's
view, from the start of answering). The bare side is timed to its first token and
to the end of its first sentence, cut by `SentenceSplitter` as the pipeline cuts
it. The cost of checking before streaming is then "first checked sentence / bare
first sentence" (bare first token + that sentence's own generation time).

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
from app.llm.base import ChatMessage, Deadline, WrappedLLM
from app.llm.llamacpp import LlamaCppLLM
from app.main import create_app
from app.rag.citations import SentenceSplitter
from eval.bench.stats import ratio, summary_ms

FIRST_SENTENCE_TARGET = 1.2
"""First checked sentence within 20 % of the bare model's first sentence."""


@dataclass
class _Call:
    messages: list[ChatMessage]
    max_tokens: int
    text: str = ""
    first_at: float | None = None
    """`time.perf_counter()` when the model's first piece came out."""


class Recorder(WrappedLLM):
    """The real model, remembering what ShopDesk asked of it (`calls`)."""

    def __init__(self, inner: LlamaCppLLM) -> None:
        super().__init__(inner)
        self._llama = inner
        self.calls: list[_Call] = []

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self._llama.warm(messages)

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
        for piece in self._inner.stream(
            messages, max_tokens=max_tokens, stop=stop, deadline=deadline
        ):
            if piece and call.first_at is None:
                call.first_at = time.perf_counter()
            call.text += piece
            yield piece


@dataclass
class Timing:
    """One run, in seconds from the request (ShopDesk) or the call (bare)."""

    first_s: float
    """The first streamed text: ShopDesk's first `token` event (its first checked
    sentence), the bare model's first token."""
    total_s: float
    text: str
    model_first_s: float = 0.0
    """The model's own first token (bare: `first_s`)."""
    sentence_s: float = 0.0
    """The end of the first sentence: ShopDesk's first `token` event; for the bare model
    the moment `SentenceSplitter` cuts its first sentence (else the end of its text)."""
    server_ms: dict[str, float] = field(default_factory=dict)
    """ShopDesk's `done.timings_ms` (from the start of answering)."""


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
    first, sentence, pieces = 0.0, 0.0, []
    splitter = SentenceSplitter()
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
                if not sentence and splitter.feed(piece):
                    sentence = time.perf_counter() - t0
    total = time.perf_counter() - t0
    text = "".join(pieces)
    if not sentence and text.strip():
        sentence = total  # one sentence: it ends with the text, as the pipeline's flush
    return Timing(first, total, text, model_first_s=first, sentence_s=sentence)


def shopdesk(
    client: TestClient, question: str, model: Recorder | None = None
) -> tuple[Timing, dict[str, Any]]:
    """One turn over the SSE route, timed at the client; with `model` (the recorder the
    app calls) also the model's first token, on the same clock."""
    if model is not None:
        model.calls.clear()
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
    total = time.perf_counter() - t0
    server = {k: float(v) for k, v in (done.get("timings_ms") or {}).items()}
    model_first = 0.0
    if model is not None and model.calls and model.calls[0].first_at is not None:
        model_first = model.calls[0].first_at - t0
    elif first and "first_token_ms" in server and "first_sentence_ms" in server:
        # no recorder: back from the first token event by the server's own interval
        model_first = first - (server["first_sentence_ms"] - server["first_token_ms"]) / 1000
    timing = Timing(
        first,
        total,
        str(done.get("answer", "")),
        model_first_s=model_first,
        sentence_s=first,
        server_ms=server,
    )
    return timing, done


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
        _, done = shopdesk(client, q, rec)  # learn the prompt ShopDesk builds for q
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
                    timing, _ = shopdesk(client, q, rec)
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
    """p50s and ratios over every run. `ours_first_token` is the model's first token inside
    ShopDesk (what the first `token` event was until the stream sent checked sentences only);
    `ours_first_sentence` is the first `token` event, the first checked sentence."""

    def each(side: str, attr: str) -> list[float]:
        return [float(getattr(t, attr)) for it in items for t in it[side]]

    def server(key: str) -> list[float]:
        return [t.server_ms[key] / 1000 for it in items for t in it["ours"] if key in t.server_ms]

    ours_total, bare_total = each("ours", "total_s"), each("bare", "total_s")
    ours_first, bare_first = each("ours", "model_first_s"), each("bare", "first_s")
    ours_sentence, bare_sentence = each("ours", "sentence_s"), each("bare", "sentence_s")
    per_item = [
        median(o.total_s / b.total_s for o, b in zip(it["ours"], it["bare"], strict=True))
        for it in items
    ]
    per_item_sentence = [
        median(
            o.sentence_s / b.sentence_s
            for o, b in zip(it["ours"], it["bare"], strict=True)
            if b.sentence_s
        )
        for it in items
        if any(b.sentence_s for b in it["bare"])
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
        "ours_first_sentence": summary_ms(ours_sentence),
        "ours_first_token_to_sentence": summary_ms(
            [s - f for s, f in zip(ours_sentence, ours_first, strict=True)]
        ),
        "server_first_token": summary_ms(server("first_token_ms")),
        "server_first_sentence": summary_ms(server("first_sentence_ms")),
        "bare_first_sentence": summary_ms(bare_sentence),
        "bare_first_sentence_generation": summary_ms(
            [s - f for s, f in zip(bare_sentence, bare_first, strict=True)]
        ),
        "first_sentence_ratio": ratio(sum(ours_sentence), sum(bare_sentence)),
        "first_sentence_ratio_median_per_question": round(median(per_item_sentence), 4)
        if per_item_sentence
        else None,
        "first_sentence_target": FIRST_SENTENCE_TARGET,
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
            "model's first token vs bare uncached prompt",
            f"{g['ours_first_token']['p50_ms']:.0f} / {g['bare_uncached_prompt']['p50_ms']:.0f}"
            " ms p50",
            f"ratio {g['first_token_ratio']:.3f}; prompt {g['prompt_tokens_mean']:.0f} tokens, "
            f"{g['cached_prefix_tokens']} cached",
        ],
        [
            "first checked sentence (first streamed token) vs bare first sentence",
            f"{g['ours_first_sentence']['p50_ms']:.0f} / {g['bare_first_sentence']['p50_ms']:.0f}"
            " ms p50",
            f"ratio {g['first_sentence_ratio']:.3f} (target <= {g['first_sentence_target']:.2f});"
            f" bare = first token + {g['bare_first_sentence_generation']['p50_ms']:.0f} ms of"
            f" sentence; ShopDesk sends it {g['ours_first_token_to_sentence']['p50_ms']:.0f} ms"
            " after the model's first token",
        ],
        [
            "FAQ fast path (new wording)",
            f"{f['cold']['p50_ms']:.1f} ms p50",
            f"p95 {f['cold']['p95_ms']:.1f} ms; query embedding "
            f"{f['query_embedding']['p50_ms']:.1f} ms; {f['vs_generated_p50']:.4f} x generated",
        ],
        ["FAQ fast path (repeated wording)", f"{f['repeat']['p50_ms']:.1f} ms p50", ""],
    ]
