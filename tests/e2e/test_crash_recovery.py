"""A server killed in the middle of an answer, and a model that runs past its deadline.

Each test runs its own server over its own copy of the ingested shop (its own
database). The conversation database is SQLite in WAL mode (synchronous FULL, SQLite's
default): a turn writes the customer's message before the model starts and the reply
once it is checked, so a SIGKILL mid-stream finds no write under way and costs the
reply only; the question is kept, no half reply is.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from eval.bench.server import serving
from tests.support.shopdesk import ask, env, sse_events

pytestmark = pytest.mark.e2e

NEEDS_MODEL = (
    "If a blender arrives with a cracked jug, what are my options and who pays the postage?"
)
FAQ = "Which payment methods do you accept?"  # answered from the FAQ, no model call
FOLLOW_FAQ = "How do gift cards work?"


def _own_shop(data_dir: Path, tmp_path: Path) -> Path:
    own = tmp_path / "shop"
    shutil.copytree(data_dir, own, ignore=shutil.ignore_patterns("*.db*", "*.log"))
    return own


def _transcript(url: str, session: str) -> list[tuple[str, str]]:
    r = httpx.get(f"{url}/v1/sessions/{session}", timeout=30)
    assert r.status_code == 200, r.text
    return [(m["role"], m["text"]) for m in r.json()["messages"]]


def test_a_server_killed_mid_answer_leaves_the_conversation_whole(
    first_ingest: subprocess.CompletedProcess[str], data_dir: Path, tmp_path: Path
) -> None:
    own = _own_shop(data_dir, tmp_path)
    with serving(own, env(own)) as (url, pid):
        first = ask(url, FAQ)
        session = str(first["session_id"])
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/stream",
            json={"message": NEEDS_MODEL, "session_id": session},
            timeout=300,
        ) as r:
            assert r.status_code == 200
            event = ""
            for line in r.iter_lines():  # kill once the model's first words are out
                if line.startswith("event: "):
                    event = line[7:]
                    assert event != "done", "the answer finished before the kill"
                elif event == "token":
                    os.kill(pid, signal.SIGKILL)
                    break

    db = own / "shopdesk.db"
    assert db.with_name("shopdesk.db-wal").exists()  # the kill left its write-ahead log
    with sqlite3.connect(db) as conn:  # a fresh connection recovers from it first
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    with serving(own, env(own)) as (url, _pid):
        earlier = _transcript(url, session)
        # the killed turn's question is there, its reply neither whole nor half
        assert earlier == [
            ("user", FAQ),
            ("assistant", str(first["answer"])),
            ("user", NEEDS_MODEL),
        ]
        later = ask(url, FOLLOW_FAQ, session_id=session)
        assert later["session_id"] == session
        assert later["outcome"] == "faq", later
        assert _transcript(url, session) == [
            *earlier,
            ("user", FOLLOW_FAQ),
            ("assistant", str(later["answer"])),
        ]


def test_a_model_past_its_deadline_is_a_clean_error_and_the_session_goes_on(
    first_ingest: subprocess.CompletedProcess[str], data_dir: Path, tmp_path: Path
) -> None:
    own = _own_shop(data_dir, tmp_path)
    with serving(own, env(own) | {"SHOPDESK_LLM__TIMEOUT_S": "0.5"}) as (url, _pid):
        session = str(ask(url, FAQ)["session_id"])

        r = httpx.post(
            f"{url}/v1/chat", json={"message": NEEDS_MODEL, "session_id": session}, timeout=300
        )
        assert r.status_code == 504, r.text
        assert r.json() == {
            "error": {"code": "model_timeout", "message": r.json()["error"]["message"]}
        }

        with httpx.stream(
            "POST",
            f"{url}/v1/chat/stream",
            json={"message": NEEDS_MODEL, "session_id": session},
            timeout=300,
        ) as streamed:
            assert streamed.status_code == 200
            events = sse_events(streamed)
        assert events[-1] == ("", "[DONE]")
        kind, data = events[-2]
        assert kind == "error"
        assert json.loads(data)["error"]["code"] == "model_timeout"

        # the same session answers its next question (from the FAQ, no model needed)
        later = ask(url, FOLLOW_FAQ, session_id=session)
        assert later["outcome"] == "faq", later
        roles = [role for role, _ in _transcript(url, session)]
        assert roles == ["user", "assistant", "user", "user", "user", "assistant"]
