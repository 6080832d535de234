"""ShopDesk as its own process, as the e2e and integration tests drive it: its environment
(the shared model cache, an admin key, a customer-token secret, the sample orders' day),
the CLI (`python -m app ingest`, `orders load`), and one chat turn over HTTP."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.paths import MODEL_CACHE, SAMPLE_ORDERS

ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
TOKEN_SECRET = "e2e-customer-token-secret"
SHOPDESK = [sys.executable, "-m", "app"]


def env(data_dir: Path) -> dict[str, str]:
    """The environment of a ShopDesk process over `data_dir`."""
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
    """`shopdesk ingest kb` into `data_dir`, wide enough for its summary table."""
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


def count(output: str, label: str) -> int:
    """The number in the row `label` of the ingest summary table."""
    line = next(line for line in output.splitlines() if label in line)
    return int(line.strip("│ ").split("│")[-1].strip())


def sse_events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream, read to its end; the closing
    `data: [DONE]` comes as ("", "[DONE]")."""
    events: list[tuple[str, str]] = []
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, line[6:]))
            event = ""
    return events


def ask(url: str, message: str, **extra: object) -> dict[str, object]:
    """One `/v1/chat` turn on the server at `url`; its reply (the turn must answer 200)."""
    r = httpx.post(f"{url}/v1/chat", json={"message": message, **extra}, timeout=300)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body
