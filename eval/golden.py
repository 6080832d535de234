"""The golden-set row model: every file is validated before a run starts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_HALF = re.compile(r"\.(?:dev|test)$")


class GoldenError(ValueError):
    """A golden file with a bad row; the message names the file and line."""


class GoldenRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    reference_answer: str = ""
    source_doc_ids: list[str] = Field(default_factory=list)
    language: str = Field(pattern=r"^(zh|en)$")
    corpus: str | None = None
    dataset: str | None = None
    scope: dict[str, Any] | None = None
    all_answers: list[str] | None = None
    answerable: bool = True
    partial_doc_ids: list[str] | None = None
    expected_outcomes: list[str] | None = None
    """Outcomes besides an answer (`faq`, `generated`) that count as answering this row:
    `tool` for a shopping question the catalogue should take, `handoff` for a request for
    a person. Without it, any other outcome on an answerable row is a false refusal."""

    def part(self, default: str) -> str:
        """The row's `dataset`, else `default` (a file stem) without a `.dev` / `.test`
        suffix: both halves of a split file (`eval/split.py`) report as one part."""
        return self.dataset or _HALF.sub("", default)


def load_golden(path: Path) -> list[GoldenRow]:
    rows: list[GoldenRow] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(GoldenRow.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise GoldenError(f"{path}:{number}: {exc}") from exc
    return rows


def foreign(rows: list[GoldenRow]) -> list[GoldenRow]:
    """Rows asked of a knowledge base that lacks their answers: unanswerable there.

    They keep their language and get a part of their own (`foreign: <part>`).
    """
    return [
        row.model_copy(
            update={
                "answerable": False,
                "source_doc_ids": [],
                "scope": None,
                "dataset": f"foreign: {row.dataset or 'rows'}",
            }
        )
        for row in rows
    ]
