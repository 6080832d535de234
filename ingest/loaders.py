"""Files → Documents: Markdown, text, HTML, PDF, and JSONL/CSV rows.

A file either loads whole or fails with a `LoadError` naming the reason; a
half-read file is never passed on, so a broken row cannot silently shrink a
catalogue. Ids are declared (front matter, an `id` column) or derived from
the path, so they stay stable between runs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from app.domain import KINDS, Document, Kind, Lang, Metadata
from app.text import detect_lang

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".jsonl", ".csv"}
)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_RESERVED = {
    "id",
    "title",
    "text",
    "source",
    "kind",
    "lang",
    "language",
    "meta",
    "question",
    "answer",
}


class LoadError(Exception):
    """A file that cannot be ingested, with the reason a person can act on."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def discover(paths: Sequence[Path]) -> list[Path]:
    """Supported files under `paths` (folders recursively), sorted; hidden entries skipped."""
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise LoadError(path, "no such file or folder")
        if path.is_file():
            found.add(path)
            continue
        for child in path.rglob("*"):
            rel = child.relative_to(path).parts
            if (
                child.is_file()
                and child.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in rel)
            ):
                found.add(child)
    return sorted(found)


def infer_kind(path: Path) -> Kind:
    name = path.as_posix().lower()
    if "faq" in name:
        return "faq"
    if "product" in name or "catalog" in name:
        return "product"
    return "policy"


def _kind(value: Any, path: Path) -> Kind:
    if value is None:
        return infer_kind(path)
    if value not in KINDS:
        raise LoadError(path, f"kind must be one of {', '.join(KINDS)}, not {value!r}")
    kind: Kind = value
    return kind


def _lang(value: Any, text: str) -> Lang:
    if value in ("zh", "en"):
        lang: Lang = value
        return lang
    if isinstance(value, str) and value.lower().startswith("zh"):
        return "zh"
    if isinstance(value, str) and value.lower().startswith("en"):
        return "en"
    return detect_lang(text)


def _scalar_meta(items: dict[str, Any]) -> Metadata:
    """Store-safe metadata: scalars kept, lists joined, objects as JSON, None dropped."""
    out: Metadata = {}
    for key, value in items.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float | str):
            out[str(key)] = value
        elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            out[str(key)] = ", ".join(str(v) for v in value)
        else:
            out[str(key)] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(path, f"not valid UTF-8 (byte {exc.start})") from exc
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror}") from exc


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


# --- prose files -------------------------------------------------------------------------


def _prose_document(
    path: Path, root: Path, text: str, meta: dict[str, Any], title: str | None
) -> Document:
    body = text.strip()
    if not body:
        raise LoadError(path, "empty document")
    heading = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
    rel = _rel(path, root)
    extra = {k: v for k, v in meta.items() if k not in _RESERVED}
    return Document(
        id=str(meta.get("id") or rel),
        title=str(
            meta.get("title") or title or (heading.group(1).strip() if heading else path.stem)
        ),
        text=body,
        source=str(meta.get("source") or rel),
        kind=_kind(meta.get("kind"), path),
        lang=_lang(meta.get("lang") or meta.get("language"), body),
        metadata=_scalar_meta(extra),
    )


def _load_markdown(path: Path, root: Path) -> Document:
    text = _read_text(path)
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise LoadError(path, f"front matter is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise LoadError(path, "front matter must be a mapping")
        meta = loaded
        text = text[match.end() :]
    return _prose_document(path, root, text, meta, None)


def _load_html(path: Path, root: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path), "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "noscript"]):
        tag.decompose()
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    if soup.title:
        soup.title.decompose()
    for level in range(1, 4):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    text = re.sub(r"\n\s*\n+", "\n\n", soup.get_text("\n"))
    text = "\n".join(line.strip() for line in text.splitlines())
    return _prose_document(path, root, re.sub(r"\n{3,}", "\n\n", text), {}, title)


def _load_pdf(path: Path, root: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise LoadError(path, "PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise LoadError(path, f"unreadable PDF ({exc.__class__.__name__})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise LoadError(path, "PDF has no extractable text (scanned?)")
    return _prose_document(path, root, text, {}, title)


# --- row files ---------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = _read_text(path)
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoadError(path, f"line {number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise LoadError(path, f"line {number}: expected a JSON object")
            yield number, row
        return
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise LoadError(path, f"row {number}: more values than columns")
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            value = (value or "").strip()
            if key in ("attributes", "meta") and value.startswith("{"):
                try:
                    parsed[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise LoadError(path, f"row {number}: column {key} is not JSON") from exc
            elif value != "":
                parsed[key] = value
        yield number, parsed


def _yes(value: Any, lang: Lang) -> str:
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return str(value)


def product_facts(row: dict[str, Any], lang: Lang) -> str:
    """The structured fields as one searchable line under the description."""
    attrs = row.get("attributes") or {}
    stock = row.get("stock")
    if lang == "zh":
        parts = [f"价格：{row['price']} 元"] if "price" in row else []
        parts += [f"类别：{row['category']}"] if "category" in row else []
        parts += [f"{k}：{_yes(v, lang)}" for k, v in attrs.items()]
        if stock is not None:
            parts.append(f"库存：{stock}" if float(stock) > 0 else "缺货")
    else:
        currency = row.get("currency", "")
        parts = [f"Price: {row['price']} {currency}".strip()] if "price" in row else []
        parts += [f"Category: {row['category']}"] if "category" in row else []
        parts += [f"{k}: {_yes(v, lang)}" for k, v in attrs.items()]
        if stock is not None:
            parts.append(f"In stock: {stock}" if float(stock) > 0 else "Out of stock")
    return " · ".join(parts)


def _row_document(path: Path, root: Path, number: int, row: dict[str, Any]) -> Document:
    where = f"line {number}" if path.suffix.lower() == ".jsonl" else f"row {number}"
    kind = _kind(row.get("kind"), path)
    question = row.get("question")
    text = row.get("answer") if question else row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise LoadError(path, f"{where}: no text (need 'text', or 'question' and 'answer')")
    text = text.strip()
    lang = _lang(row.get("lang") or row.get("language"), text)
    raw_meta = row.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    extra = {k: v for k, v in row.items() if k not in _RESERVED and k != "attributes"}
    metadata = _scalar_meta({**meta, **extra})
    if kind == "product":
        raw_attrs = row.get("attributes")
        attrs: dict[str, Any] = raw_attrs if isinstance(raw_attrs, dict) else {}
        metadata.update(_scalar_meta({f"attr_{k}": v for k, v in attrs.items()}))
        facts = product_facts(row, lang)
        text = f"{text}\n{facts}" if facts else text
    rel = _rel(path, root)
    title = row.get("title") or question or text[:60]
    return Document(
        id=str(row.get("id") or f"{rel}:{number}"),
        title=str(title).strip(),
        text=text,
        source=str(row.get("source") or rel),
        kind=kind,
        lang=lang,
        metadata=metadata,
        question=str(question).strip() if question else None,
    )


def load_file(path: Path, root: Path) -> list[Document]:
    """All documents in one file, or a LoadError; never a partial file."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(path, f"unsupported file type {suffix or '(none)'}")
    if suffix in (".md", ".markdown", ".txt"):
        return [_load_markdown(path, root)]
    if suffix in (".html", ".htm"):
        return [_load_html(path, root)]
    if suffix == ".pdf":
        return [_load_pdf(path, root)]
    docs = [_row_document(path, root, number, row) for number, row in _rows(path)]
    if not docs:
        raise LoadError(path, "no rows")
    return docs
