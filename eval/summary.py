"""Per-item rows → the summary: pooled, per part (`dataset`) and per language.

Every group reports the same keys; a metric that does not apply to a group
(no unanswerable rows, say) is `null`, never a made-up zero. Failed items
are counted in `failed` and listed by id; they are never averaged away.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from eval.metrics import percentile

MEAN_METRICS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "mrr@10",
    "ndcg@10",
    "citation_precision",
    "citation_support",
    "citation_recall",
    "cited",
    "token_f1",
    "exact_match",
    "semantic_similarity",
    "grounded_share",
)
STAGES = ("retrieve_ms", "prompt_ms", "first_token_ms", "generate_ms", "total_ms")
# Which way is better, for comparisons and the regression gate.
LOWER_IS_BETTER = {"false_refusal_rate", "failed", "latency_p50_ms", "latency_p95_ms"}


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [i for i in items if not i.get("error")]
    out: dict[str, Any] = {"n": len(items), "failed": len(items) - len(ok)}
    for metric in MEAN_METRICS:
        out[metric] = _mean([float(i[metric]) for i in ok if i.get(metric) is not None])
    answered = [i for i in ok if "outcome" in i]
    answerable = [i for i in answered if i["answerable"]]
    unanswerable = [i for i in answered if not i["answerable"]]
    out["refusal_rate"] = _rate(sum(i["refused"] for i in unanswerable), len(unanswerable))
    out["false_refusal_rate"] = _rate(sum(i["refused"] for i in answerable), len(answerable))
    out["faq_direct_rate"] = _rate(sum(i["outcome"] == "faq" for i in answered), len(answered))
    gated = [i for i in ok if "gate_refused" in i]
    out["gate_refusal_rate"] = _rate(
        sum(i["gate_refused"] for i in gated if not i["answerable"]),
        sum(not i["answerable"] for i in gated),
    )
    out["gate_false_refusal_rate"] = _rate(
        sum(i["gate_refused"] for i in gated if i["answerable"]),
        sum(i["answerable"] for i in gated),
    )
    timed = [i for i in answered if not i.get("cached")]
    totals = [float(i["timings_ms"]["total_ms"]) for i in timed if "total_ms" in i["timings_ms"]]
    p50, p95 = percentile(totals, 50), percentile(totals, 95)
    out["latency_p50_ms"] = round(p50) if p50 is not None else None
    out["latency_p95_ms"] = round(p95) if p95 is not None else None
    stages: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        values = [float(i["timings_ms"][stage]) for i in timed if stage in i["timings_ms"]]
        if values:
            stages[stage] = {
                "n": len(values),
                "p50": round(percentile(values, 50) or 0.0, 1),
                "p95": round(percentile(values, 95) or 0.0, 1),
            }
    out["stages_ms"] = stages
    tokens = sum(float(i["timings_ms"].get("generated_tokens", 0)) for i in timed)
    seconds = sum(float(i["timings_ms"].get("generate_ms", 0)) for i in timed) / 1000
    out["tokens_per_s"] = round(tokens / seconds, 1) if seconds else None
    out["failed_ids"] = [i["id"] for i in items if i.get("error")]
    return out


def group(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`{"overall": {...}, "parts": {dataset: {...}}, "languages": {lang: {...}}}`."""
    rows = list(items)
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    langs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in rows:
        parts[item["part"]].append(item)
        langs[item["lang"]].append(item)
    return {
        "overall": summarize(rows),
        "parts": {name: summarize(v) for name, v in sorted(parts.items())},
        "languages": {name: summarize(v) for name, v in sorted(langs.items())},
    }
