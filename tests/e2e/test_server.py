"""End to end: the real CLI ingests the sample shop, the real server answers over HTTP.

Real chromadb, the real embedding model, the default 1.5B GGUF model; the
server runs as its own process on a free loopback port.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_CACHE, ROOT

pytestmark = pytest.mark.e2e

SAMPLE_KB = ROOT / "data" / "sample_shop" / "kb"
SHOPDESK = [sys.executable, "-m", "app"]


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHOPDESK_DATA_DIR": str(data_dir),
        "SHOPDESK_MODEL_CACHE_DIR": str(MODEL_CACHE),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _ingest(kb: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOPDESK, "ingest", str(kb), *extra],
        env=_env(data_dir) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _count(output: str, label: str) -> int:
    line = next(line for line in output.splitlines() if label in line)
    return int(line.strip("│ ").split("│")[-1].strip())


@pytest.fixture(scope="module")
def kb_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample shop's knowledge base plus one broken file."""
    kb = tmp_path_factory.mktemp("kb") / "kb"
    shutil.copytree(SAMPLE_KB, kb)
    (kb / "broken.jsonl").write_text('{"id": "x", "text": "fine"}\n{not json\n', encoding="utf-8")
    return kb


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop")


@pytest.fixture(scope="module")
def first_ingest(kb_copy: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return _ingest(kb_copy, data_dir)


@pytest.fixture(scope="module")
def server(first_ingest: subprocess.CompletedProcess[str], data_dir: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [*SHOPDESK, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("server did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _ask(url: str, message: str, **extra: object) -> dict[str, object]:
    r = httpx.post(f"{url}/v1/chat", json={"message": message, **extra}, timeout=300)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_broken_file_is_reported_while_the_rest_is_ingested(
    first_ingest: subprocess.CompletedProcess[str],
) -> None:
    assert first_ingest.returncode == 1
    assert "broken.jsonl" in first_ingest.stderr
    assert "line 2" in first_ingest.stderr
    assert _count(first_ingest.stdout, "documents") == 112
    assert _count(first_ingest.stdout, "chunks in store") > 112


def test_english_question_cites_the_return_policy(server: str) -> None:
    body = _ask(
        server, "I received my order 20 days ago and changed my mind. Can I still return it?"
    )
    assert body["outcome"] in {"generated", "faq"}
    cited = {c["doc_id"] for c in body["citations"]}  # type: ignore[attr-defined]
    assert cited & {"policy-returns-en", "faq-en-04", "faq-en-03"}, body
    assert "[1]" in str(body["answer"])


def test_chinese_question_cites_a_chinese_shipping_passage(server: str) -> None:
    body = _ask(server, "寄到香港的运费是多少？")
    assert body["lang"] == "zh"
    assert body["outcome"] in {"generated", "faq"}
    cited = {c["doc_id"] for c in body["citations"]}  # type: ignore[attr-defined]
    # Both the shipping policy and the shipping-cost FAQ state the Hong Kong fee.
    assert cited & {"policy-shipping-zh", "faq-zh-06"}, body
    assert "30" in str(body["answer"]), body


def test_off_topic_question_gets_dont_know_without_citations(server: str) -> None:
    for question in ("What is the capital of Peru?", "帮我写一首关于秋天的诗"):
        body = _ask(server, question)
        assert body["outcome"] == "refused", body
        assert body["citations"] == []
        assert body["grounded"] is False


def test_stream_delivers_tokens_then_the_checked_answer(server: str) -> None:
    events: list[tuple[str, str]] = []
    with httpx.stream(
        "POST",
        f"{server}/v1/chat/stream",
        json={"message": "How long is the warranty on earbuds?"},
        timeout=300,
    ) as r:
        assert r.status_code == 200
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, line[6:]))
                event = ""
    kinds = [k for k, _ in events]
    assert kinds[0] == "meta"
    assert "token" in kinds
    assert events[-1] == ("", "[DONE]")
    done = json.loads(next(d for k, d in events if k == "done"))
    assert any(c["doc_id"] == "policy-warranty-en" for c in done["citations"]), done


def test_bad_input_over_http(server: str) -> None:
    r = httpx.post(f"{server}/v1/chat", json={"message": ""}, timeout=30)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "empty_message"


def test_unchanged_reingest_writes_nothing(server: str, kb_copy: Path, data_dir: Path) -> None:
    (kb_copy / "broken.jsonl").unlink()
    again = _ingest(kb_copy, data_dir)
    assert again.returncode == 0, again.stderr
    assert _count(again.stdout, "chunks written") == 0
    assert _count(again.stdout, "unchanged") == 112


def test_search_returns_ranked_passages_with_scores(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/search", json={"query": "退货运费谁承担？", "k": 3}, timeout=60
    )
    assert response.status_code == 200, response.text
    passages = response.json()["passages"]
    assert len(passages) == 3
    assert passages[0]["doc_id"].startswith(("policy-returns", "faq-"))
    assert passages[0]["score"] >= passages[-1]["score"]
    bad = httpx.post(f"{server}/v1/search", json={"query": "  "}, timeout=10)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "empty_query"


def test_eval_harness_scores_a_running_server(server: str, data_dir: Path, tmp_path: Path) -> None:
    golden = ROOT / "data" / "sample_shop" / "golden" / "sample_golden.jsonl"
    done = subprocess.run(
        [*SHOPDESK, "eval", str(golden), "--url", server, "--data-dir", str(data_dir),
         "--out", str(tmp_path / "run"), "--limit", "2"],
        env=_env(data_dir), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["primary"] == "server"
    assert summary["overall"]["n"] == 2
    assert summary["overall"]["failed"] == 0
    assert summary["overall"]["recall@5"] is not None
    assert summary["overall"]["latency_p50_ms"] > 0
    assert (tmp_path / "run" / "report.md").exists()
