"""The CI regression gate must fail when retrieval breaks, shown on a broken copy of the shop.

The copy keeps every document id but rotates the contents among documents,
so each id now holds another document's text: the gold documents can no
longer be found, and the retrieval thresholds must catch it. (The intact
shop passing the same gate is `make eval-smoke`, run by `make test`.)
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import MODEL_CACHE, ROOT

pytestmark = pytest.mark.integration
SAMPLE = ROOT / "data" / "sample_shop"
THRESHOLDS = ROOT / "eval" / "thresholds" / "sample_shop.json"
CONTENT = ("title", "question", "answer", "text")


def _rotate_jsonl(path: Path, by: int) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    moved = rows[by:] + rows[:by]
    for row, other in zip(rows, moved, strict=True):
        for key in CONTENT:
            if key in other:
                row[key] = other[key]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def _rotate_markdown(folder: Path, by: int) -> None:
    files = sorted(folder.glob("*.md"))
    parts = [re.match(r"(---\n.*?\n---\n)(.*)", f.read_text("utf-8"), re.S) for f in files]
    assert all(parts)
    bodies = [m.group(2) for m in parts if m]
    for f, m, body in zip(files, parts, bodies[by:] + bodies[:by], strict=True):
        assert m
        f.write_text(m.group(1) + body, "utf-8")


def test_the_gate_fails_when_retrieval_is_broken(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(SAMPLE / "kb", kb)
    _rotate_jsonl(kb / "faq.jsonl", 7)
    _rotate_jsonl(kb / "products.jsonl", 5)
    _rotate_markdown(kb / "policies", 3)
    env = {**os.environ, "SHOPDESK_MODEL_CACHE_DIR": str(MODEL_CACHE), "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "app", "eval", str(SAMPLE / "golden" / "sample_golden.jsonl"),
        "--kb", str(kb), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
        "--retrieval-only", "--baselines", "none", "--gate", str(THRESHOLDS),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "GATE FAILED" in done.stderr
    assert re.search(r"overall/all recall@5 = [\d.]+ < ", done.stderr), done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overall"]["n"] == 40
    assert summary["overall"]["failed"] == 0
