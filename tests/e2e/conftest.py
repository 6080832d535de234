"""Shared e2e fixtures: the sample shop ingested by the real CLI, one real server for the session.

Real chromadb, the real embedding model, the default 1.5B GGUF model; the
server runs as its own process on a free loopback port.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from eval.bench.server import serving
from tests.conftest import MODEL_CACHE, ROOT

ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
TOKEN_SECRET = "e2e-customer-token-secret"
SAMPLE_ORDERS = ROOT / "data" / "sample_shop" / "orders.jsonl"


SAMPLE_KB = ROOT / "data" / "sample_shop" / "kb"
SHOPDESK = [sys.executable, "-m", "app"]


def env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHOPDESK_DATA_DIR": str(data_dir),
        "SHOPDESK_MODEL_CACHE_DIR": str(MODEL_CACHE),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "SHOPDESK_ADMIN_API_KEY": ADMIN_KEY,
        "SHOPDESK_TOOLS__CUSTOMER_TOKEN_SECRET": TOKEN_SECRET,
        "SHOPDESK_TOOLS__TODAY": "2026-10-16",  # the day the sample orders are written for
    }


def ingest(kb: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOPDESK, "ingest", str(kb), *extra],
        env=env(data_dir) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def load_orders(data_dir: Path) -> None:
    """The sample shop's customers and orders into the data dir's database."""
    loaded = subprocess.run(
        [*SHOPDESK, "orders", "load", str(SAMPLE_ORDERS)],
        env=env(data_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


@contextmanager
def own_server(
    data_dir: Path, into: Path, overrides: dict[str, str] | None = None, *, orders: bool = False
) -> Iterator[tuple[str, int]]:
    """(url, pid) of a server of its own over a copy of the ingested shop at `into`.

    For tests that would disturb the session's server (a short queue under load, a
    fuzzer writing feedback and ticket replies) or that it would disturb. The database is
    not copied, so the copy starts without conversations; `orders` loads the sample
    orders into it. `overrides` are environment variables on top of `env(into)`.
    """
    shutil.copytree(data_dir, into, ignore=shutil.ignore_patterns("*.db*", "*.log"))
    if orders:
        load_orders(into)
    with serving(into, env(into) | (overrides or {})) as (url, pid):
        yield url, pid


def count(output: str, label: str) -> int:
    line = next(line for line in output.splitlines() if label in line)
    return int(line.strip("│ ").split("│")[-1].strip())


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
    load_orders(data_dir)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [*SHOPDESK, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env(data_dir),
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


def ask(url: str, message: str, **extra: object) -> dict[str, object]:
    r = httpx.post(f"{url}/v1/chat", json={"message": message, **extra}, timeout=300)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body
