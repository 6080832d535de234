"""Follow-up rewriting, measured: retrieval of follow-up and topic-change turns per method.

    python -m eval.followups [--golden data/sample_shop/golden/sample_followups.jsonl]
        [--kb data/sample_shop/kb] [--data-dir var/eval/sample] [--modes off,concat,llm]

Each row is {history: [earlier user questions], question, source_doc_ids,
language, dataset}. "follow-up" rows need the history; "topic change" rows must
not be hurt by it. Reports R@5 and MRR@10 per method, part and language, the
share of rows rewritten and the rewriting time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from app.config import Settings
from app.container import build_container
from app.domain import Lang
from app.rag.rewrite import RewriteMode, Rewriter, Turn
from eval.metrics import dedupe, mrr_at, percentile, recall_at
from ingest.pipeline import ingest


def _table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| method | group | n | R@5 | MRR@10 | rewritten | rewrite p50 ms |", "|---" * 7 + "|"]
    for mode, rows in results.items():
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[f"{row['dataset']} / {row['lang']}"].append(row)
            groups[row["dataset"]].append(row)
            groups["all"].append(row)
        for name in sorted(groups, key=lambda g: (g == "all", g)):
            items = groups[name]
            n = len(items)
            spent = [r["rewrite_ms"] for r in items if r["rewritten"]]
            p50 = percentile(spent, 50)
            lines.append(
                f"| {mode} | {name} | {n} | {sum(r['recall@5'] for r in items) / n:.3f} "
                f"| {sum(r['mrr@10'] for r in items) / n:.3f} "
                f"| {sum(r['rewritten'] for r in items) / n:.2f} "
                f"| {'-' if p50 is None else f'{p50:.0f}'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--golden", type=Path, default=Path("data/sample_shop/golden/sample_followups.jsonl")
    )
    parser.add_argument("--kb", type=Path, default=Path("data/sample_shop/kb"))
    parser.add_argument("--data-dir", type=Path, default=Path("var/eval/sample"))
    parser.add_argument("--modes", default="off,concat,llm")
    parser.add_argument("--out", type=Path, default=Path("var/eval-runs/followups"))
    args = parser.parse_args(argv)

    settings = Settings(data_dir=args.data_dir)
    container = build_container(settings)
    ingest([args.kb], embedder=container.embedder, store=container.store,
           chunking=settings.chunking, bm25_path=settings.bm25_path, prune=True)  # fmt: skip
    container.lexical.reload()
    rows = [
        json.loads(line)
        for line in args.golden.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    results: dict[str, list[dict[str, Any]]] = {}

    def probe(text: str) -> float | None:
        return container.retriever.retrieve(text, k=1).best_dense

    for mode in args.modes.split(","):
        rewriter = Rewriter(
            cast(RewriteMode, mode),
            container.llm,
            container.prompts,
            settings.dialogue.history_tokens,
            settings.dialogue.follow_up_max_score,
        )
        scored = []
        for row in rows:
            lang = cast(Lang, row["language"])
            history = [Turn("user", text) for text in row["history"]]
            t0 = time.perf_counter()
            standalone = rewriter.rewrite(row["question"], lang, history, probe)
            spent = (time.perf_counter() - t0) * 1000
            query = standalone or row["question"]
            ranked = dedupe(
                [p.chunk.doc_id for p in container.retriever.retrieve(query, k=10).passages]
            )
            gold = row["source_doc_ids"]
            scored.append({
                "id": row["id"], "dataset": row.get("dataset", "follow-up"), "lang": lang,
                "query": query, "rewritten": standalone is not None, "rewrite_ms": spent,
                "recall@5": recall_at(ranked, gold, 5), "mrr@10": mrr_at(ranked, gold, 10),
            })  # fmt: skip
        results[mode] = scored
    report = _table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report + "\n", encoding="utf-8")
    (args.out / "items.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
