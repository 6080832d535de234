"""Prompt templates from `prompts/`, one file per task and language, rendered strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from app.domain import Lang

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "prompts"


class PromptLibrary:
    """Loads every `<task>.<lang>.j2` once; a missing variable is an error, not a blank."""

    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"prompt directory not found: {directory}")
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text for a model, not HTML
            keep_trailing_newline=False,
            auto_reload=False,  # read once: no file check on every render
        )
        self.names = sorted(p.name for p in directory.glob("*.j2"))

    def render(self, task: str, lang: Lang, **variables: Any) -> str:
        template = self._env.get_template(f"{task}.{lang}.j2")
        return template.render(**variables).strip()
