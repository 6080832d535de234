"""The run's report: Markdown tables, a JSON copy, and PNG plots (matplotlib, no display)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TABLE_METRICS = (
    ("n", "n"),
    ("recall@5", "R@5"),
    ("mrr@10", "MRR@10"),
    ("ndcg@10", "nDCG@10"),
    ("citation_precision", "cite P"),
    ("citation_recall", "cite R"),
    ("cited", "cited"),
    ("token_f1", "F1"),
    ("semantic_similarity", "sim"),
    ("grounded_share", "grounded"),
    ("refusal_rate", "refuse (unans.)"),
    ("false_refusal_rate", "false refuse"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("failed", "failed"),
)
BASELINE_METRICS = (
    "recall@5",
    "mrr@10",
    "citation_precision",
    "token_f1",
    "grounded_share",
    "refusal_rate",
    "false_refusal_rate",
    "gate_refusal_rate",
    "gate_false_refusal_rate",
    "latency_p50_ms",
)
PLOTTED = ("recall@5", "mrr@10", "citation_precision", "token_f1", "grounded_share")


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def _table(groups: dict[str, dict[str, Any]], metrics: tuple[tuple[str, str], ...]) -> list[str]:
    shown = [
        (k, label) for k, label in metrics if any(g.get(k) is not None for g in groups.values())
    ]
    lines = [
        "| group | " + " | ".join(label for _, label in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for name, values in groups.items():
        lines.append(f"| {name} | " + " | ".join(fmt(values.get(k)) for k, _ in shown) + " |")
    return lines


def markdown(summary: dict[str, Any], images: list[str] | None = None) -> str:
    meta = summary["meta"]
    lines = [
        f"# Evaluation run ({summary['primary']})",
        "",
        f"- golden: {', '.join(meta['golden'])} ({meta['rows']} rows; limit {meta.get('limit')},"
        f" per part {meta.get('per_part')})",
        f"- commit: `{meta['commit']}`, started {meta['started']}, took {meta['seconds']:.0f} s",
        f"- chat model: {meta['chat_model']}; retrieval only: {meta['retrieval_only']}",
        f"- knowledge base: {meta['ingest'].get('chunks')} chunks",
        "",
        "## Per part and language",
        "",
    ]
    groups = {
        **{f"part: {k}": v for k, v in summary["parts"].items()},
        **{f"lang: {k}": v for k, v in summary["languages"].items()},
        "all": summary["overall"],
    }
    lines += _table(groups, TABLE_METRICS)
    lines += ["", "## Systems side by side (all rows)", ""]
    systems = summary["systems"]
    shown = [
        m
        for m in BASELINE_METRICS
        if any(s["overall"].get(m) is not None for s in systems.values())
    ]
    lines.append("| system | " + " | ".join(shown) + " |")
    lines.append("|---|" + "---|" * len(shown))
    for name, s in systems.items():
        lines.append(f"| {name} | " + " | ".join(fmt(s["overall"].get(m)) for m in shown) + " |")
    lines += ["", "## Systems per part (recall@5 / false refusal / F1)", ""]
    parts = sorted({p for s in systems.values() for p in s["parts"]})
    lines.append("| part | " + " | ".join(systems) + " |")
    lines.append("|---|" + "---|" * len(systems))
    for part in parts:
        cells = []
        for s in systems.values():
            g = s["parts"].get(part, {})
            cells.append(
                " / ".join(fmt(g.get(m)) for m in ("recall@5", "false_refusal_rate", "token_f1"))
            )
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    stages = summary["overall"].get("stages_ms") or {}
    if stages:
        lines += ["", "## Latency per stage (primary, ms)", "", "| stage | n | p50 | p95 |"]
        lines.append("|---|---|---|---|")
        for stage, v in stages.items():
            lines.append(f"| {stage} | {v['n']} | {fmt(v['p50'])} | {fmt(v['p95'])} |")
        lines.append(
            f"\ntokens per second while generating: {fmt(summary['overall'].get('tokens_per_s'))}"
        )
    failed = {
        name: s["overall"]["failed_ids"]
        for name, s in systems.items()
        if s["overall"]["failed_ids"]
    }
    lines += ["", "## Failed items", ""]
    if failed:
        lines += [f"- {name}: {', '.join(ids)}" for name, ids in failed.items()]
    else:
        lines.append("none")
    lines.append("")
    lines += [f"![{Path(name).stem}]({name})\n" for name in images or []]
    return "\n".join(lines)


def plots(summary: dict[str, Any], items: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    parts = summary["parts"]
    metrics = [m for m in PLOTTED if any(p.get(m) is not None for p in parts.values())]
    if metrics and parts:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(parts)), 4))
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            xs = [j + i * width for j in range(len(parts))]
            ax.bar(xs, [p.get(metric) or 0.0 for p in parts.values()], width, label=metric)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(parts))])
        ax.set_xticklabels([name[:28] for name in parts], rotation=15, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=len(metrics))
        ax.set_title("per part (primary system)")
        fig.tight_layout()
        fig.savefig(out / "per_part.png", dpi=110)
        plt.close(fig)
        written.append(out / "per_part.png")
    primary = summary["primary"]
    by_outcome: dict[str, list[float]] = {}
    for item in items:
        timings = item.get("timings_ms") or {}
        if item["system"] == primary and "total_ms" in timings and not item.get("cached"):
            by_outcome.setdefault(item["outcome"], []).append(timings["total_ms"] / 1000)
    if by_outcome:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(list(by_outcome.values()), bins=30, stacked=True, label=list(by_outcome))
        ax.set_xlabel("seconds per reply")
        ax.set_ylabel("replies")
        ax.legend()
        ax.set_title("end-to-end latency by outcome")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        written.append(out / "latency.png")
    return written


def write(run_dir: Path) -> Path:
    summary = json.loads((run_dir / "summary.json").read_text())
    items = [
        json.loads(line) for line in (run_dir / "items.jsonl").read_text().splitlines() if line
    ]
    images = [p.name for p in plots(summary, items, run_dir)]
    (run_dir / "report.md").write_text(markdown(summary, images))
    failures = [
        {k: i.get(k) for k in ("system", "id", "part", "lang", "error")}
        for i in items
        if i.get("error")
    ]
    (run_dir / "report.json").write_text(
        json.dumps({"summary": summary, "failures": failures}, indent=2, ensure_ascii=False)
    )
    return run_dir / "report.md"
