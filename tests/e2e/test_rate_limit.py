"""The chat rate limit over HTTP, on a real server started with a low limit.

The server trusts X-Forwarded-For (as behind a reverse proxy), so the test can
be two clients from one loopback address.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import own_server

pytestmark = pytest.mark.e2e

BURST = 3


@pytest.fixture(scope="module")
def limited(
    first_ingest: subprocess.CompletedProcess[str],
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    overrides = {
        "SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE": "2",  # a token every 30 s
        "SHOPDESK_SERVER__RATE_LIMIT_BURST": str(BURST),
        "SHOPDESK_SERVER__TRUST_PROXY": "true",
    }
    into = tmp_path_factory.mktemp("limited") / "shop"
    with own_server(data_dir, into, overrides) as (url, _pid):
        yield url


def _chat(url: str, client: str, path: str = "/v1/chat") -> httpx.Response:
    return httpx.post(
        f"{url}{path}",
        json={"message": "How can I track my order?"},  # an FAQ entry: no model call
        headers={"X-Forwarded-For": client},
        timeout=120,
    )


def test_a_client_over_its_limit_gets_429_with_retry_after(limited: str) -> None:
    first = [_chat(limited, "203.0.113.7").status_code for _ in range(BURST)]
    assert first == [200] * BURST
    r = _chat(limited, "203.0.113.7")
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "rate_limited"
    assert set(r.json()) == {"error"}
    assert set(error) == {"code", "message"}
    assert 1 <= int(r.headers["retry-after"]) <= 30  # integer seconds, within one token's time
    # the streaming route shares the bucket and refuses before sending a 200
    stream = _chat(limited, "203.0.113.7", "/v1/chat/stream")
    assert stream.status_code == 429
    assert stream.json()["error"]["code"] == "rate_limited"

    # another client (another forwarded address) is not limited
    assert _chat(limited, "198.51.100.23").status_code == 200
    # and health and search never are
    assert httpx.get(f"{limited}/healthz", timeout=30).status_code == 200
    assert httpx.post(f"{limited}/v1/search", json={"query": "returns"}, timeout=60).is_success
