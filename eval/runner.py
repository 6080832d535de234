"""A whole evaluation run: systems side by side over the same rows, saved to a run directory.

Systems are the product's hybrid pipeline and its baselines (BM25 only,
dense only, hybrid without the evidence gate), each the same code as the
endpoint with one setting changed, plus any `--system name:key=value`.
Against a running server (`--url`) the only system is that server.

RUN_DIR/items.jsonl  one row per (system, golden row), with the answer
RUN_DIR/summary.json the primary system's summary at the top level,
                     every system under "systems", and the run's metadata
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.config import Settings
from app.container import build_container
from app.domain import Filters
from eval.backends import Backend, CachingLLM, HttpBackend, InProcessBackend
from eval.golden import GoldenRow
from eval.grounding import GroundingJudge
from eval.scoring import answer_metrics, retrieval_metrics
from eval.summary import group
from ingest.pipeline import ingest

DEPTH = 30  # passages fetched for retrieval metrics, deduped to documents
PRIMARY = "hybrid"
BASELINES: dict[str, dict[str, Any]] = {
    "hybrid": {"retrieval.mode": "hybrid"},
    "dense": {"retrieval.mode": "dense"},
    "bm25": {"retrieval.mode": "bm25"},
    "hybrid-no-gate": {"retrieval.mode": "hybrid", "retrieval.min_dense_score": 0.0},
}


@dataclass
class RunConfig:
    golden: list[tuple[Path, list[GoldenRow]]]
    out: Path
    kb: list[Path] = field(default_factory=list)
    data_dir: Path | None = None
    url: str | None = None
    retrieval_only: bool = False
    limit: int | None = None
    per_part: int | None = None
    baselines: list[str] = field(default_factory=lambda: ["dense", "bm25", "hybrid-no-gate"])
    extra_systems: dict[str, dict[str, Any]] = field(default_factory=dict)


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """A copy of the settings with dotted keys replaced (`retrieval.mode` → `bm25`), validated."""
    data = settings.model_dump()
    for dotted, value in overrides.items():
        node = data
        *path, last = dotted.split(".")
        for key in path:
            if key not in node or not isinstance(node[key], dict):
                raise ValueError(f"unknown setting {dotted!r}")
            node = node[key]
        if last not in node:
            raise ValueError(f"unknown setting {dotted!r}")
        node[last] = value
    return Settings.model_validate(data)


def scope_filters(row: GoldenRow, metadata_keys: set[str]) -> Filters | None:
    """The row's scope as equality filters on keys the knowledge base has."""
    if not row.scope:
        return None
    filters: Filters = {
        key: value
        for key, value in row.scope.items()
        if key in metadata_keys and isinstance(value, str | int | float | bool)
    }
    return filters or None


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


async def _score_system(
    name: str,
    backend: Backend,
    rows: Sequence[tuple[str, GoldenRow]],
    ctx: _Context,
) -> list[dict[str, Any]]:
    items = []
    for part, row in tqdm(rows, desc=name, unit="q", dynamic_ncols=True):
        item: dict[str, Any] = {
            "system": name,
            "id": row.id,
            "part": part,
            "lang": row.language,
            "answerable": row.answerable,
            "question": row.question,
        }
        filters = scope_filters(row, ctx.metadata_keys)
        try:
            t0 = time.perf_counter()
            ranked = backend.search(row.question, filters, DEPTH)
            item["search_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            item["ranked"] = ranked.doc_ids[:10]
            if row.answerable and row.source_doc_ids:
                item.update(retrieval_metrics(ranked, row.source_doc_ids))
            if ranked.best_dense is not None and ctx.gate_threshold(name) is not None:
                item["gate_refused"] = ranked.best_dense < (ctx.gate_threshold(name) or 0.0)
            if not ctx.retrieval_only:
                reply = await backend.reply(row.question, filters)
                item["answer"] = reply["answer"]
                item.update(answer_metrics(row, reply, ctx.judge, ctx.embedder, ctx.doc_texts))
        except Exception as exc:  # a failed item is recorded, never dropped
            item["error"] = f"{type(exc).__name__}: {exc}"
        items.append(item)
    return items


@dataclass
class _Context:
    judge: GroundingJudge
    embedder: Any
    doc_texts: Any
    metadata_keys: set[str]
    retrieval_only: bool
    thresholds: dict[str, float | None]

    def gate_threshold(self, system: str) -> float | None:
        return self.thresholds.get(system)


def run(config: RunConfig, settings: Settings) -> dict[str, Any]:
    started = time.time()
    if config.data_dir is not None:
        settings = with_overrides(settings, {"data_dir": str(config.data_dir)})
    container = build_container(settings, llm=_NoLLM() if config.retrieval_only else None)
    ingest_info: dict[str, Any] = {"kb": [str(p) for p in config.kb]}
    if config.kb:
        report = ingest(
            config.kb,
            embedder=container.embedder,
            store=container.store,
            chunking=settings.chunking,
            bm25_path=settings.bm25_path,
        )
        container.lexical.reload()
        ingest_info.update(
            documents=report.documents,
            chunks_written=report.chunks_written,
            failures=[f"{f.path}: {f.reason}" for f in report.failures],
            seconds=round(report.seconds, 1),
        )
    ingest_info["chunks"] = container.store.count()

    texts: dict[str, list[str]] = defaultdict(list)
    keys: set[str] = set()
    for chunk in container.store.scan():
        texts[chunk.doc_id].append(f"{chunk.title}\n{chunk.text}")
        keys.update(chunk.metadata)

    rows = [(r.part(path.stem), r) for path, golden in config.golden for r in golden]
    if config.per_part:  # the first N of every part: a small sample that covers them all
        seen: dict[str, int] = defaultdict(int)
        kept = []
        for part, row in rows:
            seen[part] += 1
            if seen[part] <= config.per_part:
                kept.append((part, row))
        rows = kept
    if config.limit:
        rows = rows[: config.limit]

    systems: dict[str, Settings] = {}
    if config.url is None:
        for name in [PRIMARY, *config.baselines]:
            systems[name] = with_overrides(settings, BASELINES[name])
        for name, overrides in config.extra_systems.items():
            systems[name] = with_overrides(settings, overrides)
    ctx = _Context(
        judge=GroundingJudge(container.embedder),
        embedder=container.embedder,
        doc_texts=lambda doc: texts.get(doc, []),
        metadata_keys=keys,
        retrieval_only=config.retrieval_only,
        thresholds={
            name: s.retrieval.min_dense_score if s.retrieval.min_dense_score > 0 else None
            for name, s in systems.items()
        },
    )
    llm = CachingLLM(container.llm.inner)  # each system queues it behind its own gate
    backends: dict[str, Backend] = (
        {"server": HttpBackend(config.url)}
        if config.url
        else {name: InProcessBackend(container, s, llm) for name, s in systems.items()}
    )

    async def score_all() -> dict[str, list[dict[str, Any]]]:
        return {name: await _score_system(name, b, rows, ctx) for name, b in backends.items()}

    by_system = asyncio.run(score_all())
    primary = "server" if config.url else PRIMARY
    summaries = {name: group(items) for name, items in by_system.items()}
    summary: dict[str, Any] = {
        **summaries[primary],
        "primary": primary,
        "systems": summaries,
        "meta": {
            "commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "golden": [str(p) for p, _ in config.golden],
            "rows": len(rows),
            "limit": config.limit,
            "per_part": config.per_part,
            "url": config.url,
            "retrieval_only": config.retrieval_only,
            "ingest": ingest_info,
            "chat_model": None if config.retrieval_only else container.llm.name,
            "grounding_threshold": ctx.judge.threshold,
            "settings": json.loads(settings.model_dump_json()),
            "systems": {
                name: BASELINES.get(name, config.extra_systems.get(name, {})) for name in backends
            },
        },
    }
    config.out.mkdir(parents=True, exist_ok=True)
    with (config.out / "items.jsonl").open("w", encoding="utf-8") as fh:
        for items in by_system.values():
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    (config.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


class _NoLLM:
    """Stands in for the chat model in a retrieval-only run, which never generates."""

    name = "none"
    context_window = 4096

    def count_tokens(self, text: str) -> int:
        return len(text)

    def stream(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError("a retrieval-only run does not generate")
