"""Answer-level smoke evaluation through the same pipeline as the chat endpoint.

    python -m eval.answer_smoke --kb data/sample_shop/kb --data-dir DIR GOLDEN.jsonl...

Per part and language: how often the bot answered, refused, answered from an
FAQ directly, cited a gold document, and how long it took. Answerable rows
that were refused count as false refusals; unanswerable rows (`answerable:
false`) that got an answer count as failures to refuse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from app.config import Settings
from app.container import build_container
from app.orchestrator import ChatService, TurnRequest
from eval.golden import GoldenRow, load_golden
from ingest.pipeline import ingest


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if r["outcome"] != "refused"]
    latencies = [r["total_ms"] for r in rows]
    return {
        "n": len(rows),
        "false_refusal_rate": _rate(len(answerable) - len(answered), len(answerable)),
        "refusal_rate_unanswerable": _rate(
            sum(r["outcome"] == "refused" for r in unanswerable), len(unanswerable)
        ),
        "faq_direct_share": _rate(sum(r["outcome"] == "faq" for r in rows), len(rows)),
        "gold_cited_share": _rate(sum(r["gold_cited"] for r in answered), len(answered)),
        "latency_p50_ms": round(statistics.median(latencies)) if latencies else None,
        "latency_max_ms": round(max(latencies)) if latencies else None,
    }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


async def _run(
    rows: list[GoldenRow], service: ChatService, default_part: str
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        reply = await service.reply(TurnRequest(row.question, lang=None))
        cited = {c["doc_id"] for c in reply["citations"]}
        out.append(
            {
                "id": row.id,
                "part": row.part(default_part),
                "lang": row.language,
                "answerable": row.answerable,
                "outcome": reply["outcome"],
                "gold_cited": bool(cited & set(row.source_doc_ids)),
                "answer": reply["answer"],
                "cited": sorted(cited),
                "total_ms": reply["timings_ms"]["total_ms"],
            }
        )
        print(f"{row.id}: {reply['outcome']} cited={sorted(cited)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("golden", type=Path, nargs="+")
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    settings = Settings(data_dir=args.data_dir)
    container = build_container(settings)
    report = ingest(
        [args.kb],
        embedder=container.embedder,
        store=container.store,
        chunking=settings.chunking,
        bm25_path=settings.bm25_path,
    )
    container.lexical.reload()
    print(f"ingest: {report.documents} docs, {container.store.count()} chunks")
    rows = [r for path in args.golden for r in load_golden(path)]

    async def run_all() -> list[dict[str, Any]]:
        service = ChatService(container.answers, container.llm, container.gate())
        return await _run(rows, service, args.golden[0].stem)

    results = asyncio.run(run_all())
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[f"part:{r['part']}"].append(r)
        groups[f"lang:{r['lang']}"].append(r)
        groups["all"].append(r)
    summary = {name: _summary(rows) for name, rows in sorted(groups.items())}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"summary": summary, "rows": results}, indent=2, ensure_ascii=False)
        )


if __name__ == "__main__":
    main()
