"""`shopdesk ingest` killed (SIGKILL) half way, at three points, then run again: the store
ends as if nothing had happened.

Real chromadb and the real embedding model, the CLI as its own process. A first run
stores the sample shop's policies; then its FAQ, four long generated guides and a
changed policy are added, and that run is killed as soon as chunks start to land, its
re-run once it has written more, and the next one the moment the last chunk is in
(while the BM25 index is rebuilt, or just after). The store's chunk size is 4 so that a kill
lands between the writes of one batch and leaves half-written documents. The count of
chunks is read by another chromadb client in a separate process.
"""

import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from app.config import Settings
from app.retrieval.bm25 import BM25Index, fingerprint
from app.retrieval.store import ChromaStore
from ingest.chunking import chunk_document
from ingest.pipeline import IngestReport, load_documents
from tests.support.paths import SAMPLE_KB
from tests.support.shopdesk import SHOPDESK, count, env

pytestmark = pytest.mark.integration

STORE_BATCH = "4"  # chunks per chroma write: a kill between two writes splits a batch
WATCH = """
import sys, time
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(sys.argv[1], settings=Settings(anonymized_telemetry=False))
while True:
    print(client.get_collection(sys.argv[2]).count(), flush=True)
    time.sleep(0.05)
"""
STATE = """
import sys
from pathlib import Path
from app.retrieval.bm25 import BM25Index, fingerprint
from app.retrieval.store import ChromaStore
from ingest.pipeline import stored_documents
chunks = list(ChromaStore(Path(sys.argv[1]), sys.argv[2]).scan())
_, half = stored_documents(chunks)
index = BM25Index.load(Path(sys.argv[3]))
bm25 = "agrees" if index and index.fingerprint == fingerprint(chunks) else "disagrees"
print(f"{len(chunks)} chunks stored, {len(half)} half-written document(s), BM25 {bm25}")
"""


def _env(data_dir: Path) -> dict[str, str]:
    return env(data_dir) | {"SHOPDESK_STORE__BATCH_SIZE": STORE_BATCH, "COLUMNS": "200"}


def _ingest(kb: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOPDESK, "ingest", str(kb)],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _ingest_killed_at(kb: Path, data_dir: Path, settings: Settings, target: int) -> str:
    """Run ingest and SIGKILL it once the store holds `target` chunks; what happened."""
    log = data_dir.parent / "killed-ingest.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SHOPDESK, "ingest", str(kb)], env=_env(data_dir), stdout=out, stderr=out
        )
        watcher = subprocess.Popen(
            [sys.executable, "-c", WATCH, str(settings.chroma_dir), settings.store.collection],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        seen: list[int] = []
        try:
            deadline = time.monotonic() + 900  # a safety net, not a measurement
            for line in watcher.stdout:
                seen.append(int(line))
                if seen[-1] >= target or proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "ingest never reached the kill point"
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait(timeout=60)
        finally:
            watcher.kill()
            watcher.wait(timeout=60)
    assert rc in (-signal.SIGKILL, 0), log.read_text()
    how = "killed" if rc == -signal.SIGKILL else "had already finished"
    return f"{how} at {seen[-1]} chunks (lowest seen {min(seen)}): {_state(settings)}"


def _state(settings: Settings) -> str:
    """What the store looks like now, read by a process of its own (for the test's log)."""
    args = [str(settings.chroma_dir), settings.store.collection, str(settings.bm25_path)]
    found = subprocess.run(
        [sys.executable, "-c", STATE, *args], capture_output=True, text=True, timeout=300
    )
    return found.stdout.strip() or found.stderr[-500:]


def _guide(n: int) -> str:
    """A long policy-like document that chunks into several pieces."""
    parts = [f"---\nid: guide-{n}\ntitle: Warehouse guide {n}\n---\n# Warehouse guide {n}\n"]
    for section in range(6):
        parts.append(f"## Section {section}\n")
        for line in range(12):
            k = n * 1000 + section * 100 + line
            parts.append(
                f"Parcel class {k} leaves warehouse {k % 7} within {k % 5 + 1} days, "
                f"weighs at most {k % 30 + 1} kg and costs {k % 90 + 10} yuan to send. "
                f"Returns of class {k} go back to depot {k % 11}."
            )
        parts.append("")
    return "\n".join(parts)


def _expected(kb: Path, settings: Settings) -> dict[str, dict[str, object]]:
    """doc id → {chunk id → content hash} as chunking the documents now produces them."""
    report = IngestReport()
    docs = load_documents([kb], report)
    assert report.ok, report.failures
    return {
        d.id: {c.id: c.metadata["content_hash"] for c in chunk_document(d, settings.chunking)}
        for d in docs
    }


def test_a_killed_ingest_is_finished_by_the_next_run(tmp_path: Path) -> None:
    kb, data_dir = tmp_path / "kb", tmp_path / "data"
    settings = Settings(data_dir=data_dir, store={"batch_size": int(STORE_BATCH)})
    shutil.copytree(SAMPLE_KB / "policies", kb / "policies")
    first = _ingest(kb, data_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    stored_first = count(first.stdout, "chunks in store")

    # the FAQ, four long guides (sorted first, so the first batch is theirs), and a
    # changed policy, whose old chunks are replaced
    shutil.copy(SAMPLE_KB / "faq.jsonl", kb / "faq.jsonl")
    (kb / "about").mkdir()
    for n in range(4):
        (kb / "about" / f"guide-{n}.md").write_text(_guide(n), encoding="utf-8")
    returns = kb / "policies" / "returns.en.md"
    returns.write_text(returns.read_text(encoding="utf-8") + "\nGift cards cannot be returned.\n")
    expected = _expected(kb, settings)
    total = sum(len(chunks) for chunks in expected.values())
    assert max(len(chunks) for chunks in expected.values()) >= 5  # half-writable documents

    kills = [_ingest_killed_at(kb, data_dir, settings, stored_first + 1)]
    kills.append(_ingest_killed_at(kb, data_dir, settings, stored_first + 30))
    kills.append(_ingest_killed_at(kb, data_dir, settings, total))
    sys.stderr.write(f"\ningest kills: {kills}\n")

    final = _ingest(kb, data_dir)
    assert final.returncode == 0, final.stdout + final.stderr

    store = ChromaStore(settings.chroma_dir, settings.store.collection)
    chunks = list(store.scan())
    ids = [c.id for c in chunks]
    assert len(ids) == len(set(ids)), "duplicate chunk ids"
    stored: dict[str, dict[str, object]] = defaultdict(dict)
    for chunk in chunks:
        stored[chunk.doc_id][chunk.id] = chunk.metadata["content_hash"]
    # every document has exactly the chunks chunking it gives now (none missing, no old
    # version's left over), and no chunk belongs to a document that is not there
    assert dict(stored) == expected

    index = BM25Index.load(settings.bm25_path)
    assert index is not None
    assert sorted(index.ids) == sorted(ids)
    assert index.fingerprint == fingerprint(chunks)

    # the dense index holds every chunk too (a nearest-neighbour query over all of them)
    client = chromadb.PersistentClient(
        str(settings.chroma_dir), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_collection(settings.store.collection)
    probe = collection.get(ids=[ids[0]], include=["embeddings"])["embeddings"]
    found = collection.query(query_embeddings=probe, n_results=len(ids), include=[])
    assert sorted(found["ids"][0]) == sorted(ids)

    again = _ingest(kb, data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert count(again.stdout, "chunks written") == 0
    assert count(again.stdout, "unchanged") == len(expected)
