"""Two runs side by side: what moved, which way is better, and which items changed outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.report import fmt
from eval.summary import LOWER_IS_BETTER

COMPARED = (
    "recall@5",
    "mrr@10",
    "ndcg@10",
    "citation_precision",
    "citation_recall",
    "token_f1",
    "semantic_similarity",
    "grounded_share",
    "refusal_rate",
    "false_refusal_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "failed",
)


def _groups(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "all": summary["overall"],
        **{f"part: {k}": v for k, v in summary["parts"].items()},
        **{f"lang: {k}": v for k, v in summary["languages"].items()},
    }


def _items(run: Path, system: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "items.jsonl").read_text().splitlines() if line]
    return {r["id"]: r for r in rows if r["system"] == system}


def compare(run_a: Path, run_b: Path) -> str:
    a = json.loads((run_a / "summary.json").read_text())
    b = json.loads((run_b / "summary.json").read_text())
    lines = [
        f"# {run_a} → {run_b}",
        "",
        "| group | metric | A | B | change |",
        "|---|---|---|---|---|",
    ]
    ga, gb = _groups(a), _groups(b)
    for name in [g for g in ga if g in gb]:
        for metric in COMPARED:
            va, vb = ga[name].get(metric), gb[name].get(metric)
            if va is None or vb is None or va == vb:
                continue
            better = (vb < va) if metric in LOWER_IS_BETTER else (vb > va)
            lines.append(
                f"| {name} | {metric} | {fmt(va)} | {fmt(vb)} | "
                f"{'better' if better else 'WORSE'} ({vb - va:+.3f}) |"
            )
    ia, ib = _items(run_a, a["primary"]), _items(run_b, b["primary"])
    flips = [
        f"- {i}: {ia[i].get('outcome')} → {ib[i].get('outcome')}"
        for i in sorted(set(ia) & set(ib))
        if ia[i].get("outcome") != ib[i].get("outcome")
    ]
    lines += ["", f"## Items whose outcome changed ({len(flips)})", "", *flips]
    return "\n".join(lines)
