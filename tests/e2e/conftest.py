"""Shared e2e fixtures: the sample shop ingested by the real CLI, one real server for the session.

Real chromadb, the real embedding model, the default 1.5B GGUF model; the
server runs as its own process on a free loopback port. The helpers the tests call
(`ask`, `env`, `own_server`, …) are in tests/support.
"""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import SAMPLE_KB
from tests.support.servers import shopdesk_server
from tests.support.shopdesk import env, ingest, load_orders


@pytest.fixture(scope="session")
def kb_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample shop's knowledge base plus one broken file."""
    kb = tmp_path_factory.mktemp("kb") / "kb"
    shutil.copytree(SAMPLE_KB, kb)
    (kb / "broken.jsonl").write_text('{"id": "x", "text": "fine"}\n{not json\n', encoding="utf-8")
    return kb


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop")


@pytest.fixture(scope="session")
def first_ingest(kb_copy: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return ingest(kb_copy, data_dir)


@pytest.fixture(scope="session")
def server(first_ingest: subprocess.CompletedProcess[str], data_dir: Path) -> Iterator[str]:
    """The session's server, logging to `data_dir / "server.log"` (tests read it)."""
    load_orders(data_dir)
    with shopdesk_server(env(data_dir), data_dir / "server.log", timeout_s=300, poll_s=1) as url:
        yield url
