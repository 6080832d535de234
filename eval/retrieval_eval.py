"""Retrieval-only evaluation: ingest a knowledge base, score every retrieval mode per part.

    python -m eval.retrieval_eval --golden G.jsonl --kb KB_DIR --data-dir DIR
        [--modes hybrid,dense,bm25] [--variants convex:0.1,rrf:0.5] [--out results.json]

Ingest is idempotent, so a second run reuses the store. `scope` rows become
metadata filters on the keys the knowledge base actually has.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import Settings
from app.container import LexicalIndex, build_embedder, build_store
from app.domain import Filters
from app.retrieval.hybrid import HybridRetriever, Mode
from eval.golden import GoldenRow, load_golden
from eval.metrics import dedupe, mrr_at, ndcg_at, recall_at
from ingest.pipeline import ingest

DEPTH = 30  # chunks fetched per question before deduping to documents


@dataclass
class Scores:
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, **metrics: float) -> None:
        for name, value in metrics.items():
            self.values[name].append(value)

    def summary(self) -> dict[str, float]:
        out = {name: round(statistics.fmean(v), 3) for name, v in self.values.items() if v}
        out["n"] = len(next(iter(self.values.values()), []))
        return out


def scope_filters(row: GoldenRow, metadata_keys: set[str]) -> Filters | None:
    """The row's scope as equality filters, on keys the knowledge base has."""
    if not row.scope:
        return None
    filters: Filters = {
        key: value
        for key, value in row.scope.items()
        if key in metadata_keys and isinstance(value, str | int | float | bool)
    }
    return filters or None


def evaluate(
    rows: list[GoldenRow], retriever: HybridRetriever, mode: Mode, keys: set[str], default_part: str
) -> dict[str, dict[str, dict[str, float]]]:
    groups: dict[str, dict[str, Scores]] = {
        "overall": defaultdict(Scores),
        "parts": defaultdict(Scores),
        "languages": defaultdict(Scores),
    }
    for row in rows:
        if not row.answerable or not row.source_doc_ids:
            continue
        t0 = time.perf_counter()
        result = retriever.retrieve(row.question, scope_filters(row, keys), k=DEPTH, mode=mode)
        ms = (time.perf_counter() - t0) * 1000
        ranked = dedupe([p.chunk.doc_id for p in result.passages])
        gold = row.source_doc_ids
        metrics = {
            "recall@1": recall_at(ranked, gold, 1),
            "recall@5": recall_at(ranked, gold, 5),
            "recall@10": recall_at(ranked, gold, 10),
            "mrr@10": mrr_at(ranked, gold, 10),
            "ndcg@10": ndcg_at(ranked, gold, 10),
            "latency_ms": ms,
        }
        if result.best_dense is not None:
            metrics["best_dense"] = result.best_dense
        for group, key in (
            ("overall", "all"),
            ("parts", row.part(default_part)),
            ("languages", row.language),
        ):
            groups[group][key].add(**metrics)
    return {g: {k: s.summary() for k, s in v.items()} for g, v in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--golden", type=Path, action="append", required=True)
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--modes", default="hybrid,dense,bm25")
    parser.add_argument(
        "--variants",
        default="",
        help="extra hybrid runs as fusion:bm25_weight (convex:0.1,rrf:0.5)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--skip-ingest", action="store_true", help="use the store in --data-dir as it is"
    )
    args = parser.parse_args()

    settings = Settings(data_dir=args.data_dir)
    embedder = build_embedder(settings)
    store = build_store(settings)
    ingest_info: dict[str, Any] = {"chunks": store.count(), "skipped": args.skip_ingest}
    if not args.skip_ingest:
        report = ingest(
            [args.kb],
            embedder=embedder,
            store=store,
            chunking=settings.chunking,
            bm25_path=settings.bm25_path,
        )
        ingest_info.update(
            documents=report.documents,
            chunks=store.count(),
            seconds=round(report.seconds, 1),
            failures=len(report.failures),
        )
    print(f"ingest: {ingest_info}")
    lexical = LexicalIndex(store, settings)
    keys = {k for meta in lexical.current.metas for k in meta}
    rows = [r for path in args.golden for r in load_golden(path)]

    modes: dict[str, Mode] = {"hybrid": "hybrid", "dense": "dense", "bm25": "bm25"}
    runs: list[tuple[str, Mode, Settings]] = [
        (m, modes[m], settings) for m in args.modes.split(",") if m in modes
    ]
    for variant in filter(None, args.variants.split(",")):
        fusion, weight = variant.split(":")
        tuned = settings.model_copy(deep=True)
        tuned.retrieval.fusion = "rrf" if fusion == "rrf" else "convex"
        tuned.retrieval.bm25_weight = float(weight)
        runs.append((f"hybrid[{variant}]", "hybrid", tuned))

    results: dict[str, Any] = {"ingest": ingest_info}
    for label, mode, cfg in runs:
        retriever = HybridRetriever(embedder, store, lambda: lexical.current, cfg.retrieval)
        t0 = time.perf_counter()
        results[label] = evaluate(rows, retriever, mode, keys, args.golden[0].stem)
        print(f"\n== {label} ({time.perf_counter() - t0:.0f}s)")
        for part, s in (
            sorted(results[label]["parts"].items())
            + sorted(results[label]["languages"].items())
            + [("ALL", results[label]["overall"]["all"])]
        ):
            print(
                f"{part[:40]:40s} n={s['n']:4d} R@1={s['recall@1']:.3f} R@5={s['recall@5']:.3f} "
                f"R@10={s['recall@10']:.3f} MRR@10={s['mrr@10']:.3f} nDCG@10={s['ndcg@10']:.3f} "
                f"mean={s['latency_ms']:.0f}ms"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
