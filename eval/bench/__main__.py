"""`python -m eval.bench`: run the benchmark parts, write bench.json and a table.

Parts: model (answers vs bare llama.cpp, first token, FAQ path), server
(peak memory, concurrent clients), retrieval (1k/10k/100k chunks), ingest
(throughput vs raw encode, unchanged re-ingest of the shared knowledge base).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from app.config import Settings, load_settings
from eval.bench import ingest_speed, model, retrieval_scale, server
from eval.golden import load_golden

PARTS = ("model", "server", "retrieval", "ingest")
SAMPLE = Path("data/sample_shop")


def _faq_questions() -> list[str]:
    rows = (
        json.loads(line)
        for line in (SAMPLE / "kb" / "faq.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    )
    return [str(r["question"]) for r in rows]


def _golden(name: str) -> list[str]:
    return [r.question for r in load_golden(SAMPLE / "golden" / name)]


def _own_copy(settings: Settings, data_dir: Path) -> Settings:
    """The ingested shop's indexes with a database of the benchmark's own, so its turns do
    not land in the served shop's conversations and metrics."""
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(settings.data_dir, data_dir, ignore=shutil.ignore_patterns("*.db*", "*.log"))
    return settings.model_copy(update={"data_dir": data_dir})


def _interleave(a: list[str], b: list[str]) -> list[str]:
    return [x for pair in zip(a, b, strict=False) for x in pair]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__)
    ap.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS)
    )
    ap.add_argument("--out", type=Path, default=Path("var/bench"))
    ap.add_argument(
        "--questions", type=int, default=8, help="generated-answer questions (model part)"
    )
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sizes", default="1000,10000,100000", help="retrieval scale, chunks")
    ap.add_argument("--shared-kb", type=Path, default=Path("../shared/data/kb"))
    ap.add_argument("--shared-data-dir", type=Path, default=Path("var/eval-shared"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = [p for p in args.parts.split(",") if p]
    args.out.mkdir(parents=True, exist_ok=True)
    settings = _own_copy(load_settings(), args.out / "shop")
    result: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    table: list[list[str]] = []
    answerable = _golden("sample_golden.jsonl")
    en = [q for q in answerable if q.isascii()]
    zh = [q for q in answerable if not q.isascii()]
    if "model" in parts:
        asked = _interleave(en, zh)[: args.questions * 3]  # some are FAQ hits: skipped
        result["model"] = model.run(settings, asked, _faq_questions(), args.questions)
        table += model.rows(result["model"])
    if "retrieval" in parts:
        embed_p50 = result.get("model", {}).get("faq", {}).get("query_embedding", {}).get("p50_ms")
        sizes = [int(s) for s in args.sizes.split(",")]
        result["retrieval"] = retrieval_scale.run(sizes, embed_ms_p50=embed_p50)
        table += retrieval_scale.rows(result["retrieval"])
    if "ingest" in parts:
        result["ingest"] = ingest_speed.throughput(settings, [SAMPLE / "kb", args.shared_kb])
        result["reingest"] = ingest_speed.reingest(settings, [args.shared_kb], args.shared_data_dir)
        table += ingest_speed.rows(result["ingest"], result["reingest"])
    if "server" in parts:
        messages = _interleave(
            _faq_questions(), _interleave(answerable, _golden("sample_unanswerable.jsonl"))
        )
        result["server"] = server.run(settings.data_dir, messages, clients=args.clients)
        table += server.rows(result["server"])
    (args.out / "bench.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), "utf-8")
    md = "| measure | value | notes |\n|---|---|---|\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in table
    )
    (args.out / "bench.md").write_text(md + "\n", "utf-8")
    print(md)
    print(f"\nwritten: {args.out / 'bench.json'}, {args.out / 'bench.md'}")


if __name__ == "__main__":
    main()
