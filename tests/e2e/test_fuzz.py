"""Schemathesis over HTTP: whatever a client sends, valid or not, no operation answers a 5xx.

`schemathesis run` reads the live server's `/openapi.json` and fuzzes every operation
in it (coverage, fuzzing and stateful phases; valid and invalid inputs) with the admin
key sent, so the agent and admin routes are fuzzed past their auth; the only check is
`not_a_server_error`. The CLI, not schemathesis' pytest plugin: the plugin's fixture
loader uses a pytest internal (`Node._nodeid`) that pytest 9 no longer has.

The server is a process of its own over a copy of the ingested shop, with the sample
orders: fuzzed ticket closes, replies and feedback must not reach the database the other
e2e tests read. It runs the 0.5B model with 16 answer tokens, so a fuzzed message that
reaches the model costs a second or two, not a minute.

The CI form is short (`SHOPDESK_FUZZ_EXAMPLES`, 10 per operation, a fixed seed);
`make fuzz` runs the same test with more examples and a random seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import own_server
from tests.support.shopdesk import ADMIN_KEY

pytestmark = pytest.mark.e2e

EXAMPLES = os.environ.get("SHOPDESK_FUZZ_EXAMPLES", "10")
SEED = os.environ.get("SHOPDESK_FUZZ_SEED", "20261016")  # "random": a new one each run
SMALL_MODEL = {"SHOPDESK_LLM__MODEL": "qwen2.5-coder-0.5b", "SHOPDESK_LLM__MAX_TOKENS": "16"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def fuzz_server(
    first_ingest: subprocess.CompletedProcess[str],
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    own = tmp_path_factory.mktemp("fuzz") / "shop"
    with own_server(data_dir, own, SMALL_MODEL, orders=True) as (url, _pid):
        yield url


def _operations(url: str) -> set[str]:
    paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    return {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops if m in HTTP_METHODS}


def _accepted(report: dict[str, Any]) -> dict[str, str]:
    """Per operation, "accepted/tried" over the phases: how deep the fuzzing went."""
    out = {}
    for operation, phases in sorted(report["valid_rates"].items()):
        accepted = sum(p["accepted"] for p in phases.values())
        tried = sum(sum(p.values()) for p in phases.values())
        out[operation] = f"{accepted}/{tried}"
    return out


def test_no_operation_answers_a_server_error(
    fuzz_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    operations = _operations(fuzz_server)
    assert len(operations) >= 12  # chat, stream, search, sessions, feedback, agent, admin, health
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{fuzz_server}/openapi.json"),
        *("--checks", "not_a_server_error"),
        # The fuzzer may delete every document (DELETE /v1/admin/documents/...), after which
        # /readyz answers its deliberate 503 "not_ready"; it takes no input to fuzz anyway.
        *("--exclude-path", "/readyz"),
        *("--header", f"Authorization: Bearer {ADMIN_KEY}"),
        *("--max-examples", EXAMPLES),
        *("--workers", "1"),  # one model context: parallel turns would only queue
        *("--request-timeout", "300"),
        *("--generation-database", "none"),  # no .hypothesis/ folder in the work tree
        *("--report", "json", "--report-dir", str(tmp_path)),
        *(() if SEED == "random" else ("--seed", SEED)),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=5400, check=False, cwd=tmp_path
    )
    output = run.stdout + run.stderr
    reports = list(tmp_path.glob("json-*.json"))
    assert len(reports) == 1, output[-4000:]
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    with capsys.disabled():
        cases = report["test_cases"]["generated"]
        sys.stderr.write(
            f"\nfuzz: {cases} cases over {len(operations)} operations, seed {report['seed']}; "
            f"got past validation (generated valid inputs): {_accepted(report)}\n"
        )

    assert report["failures"] == [], output[-8000:]
    assert report["errors"] == [], output[-8000:]
    assert run.returncode == 0, output[-8000:]
    assert report["operations"]["tested"] == len(operations) - 1, report["operations"]
    assert report["test_cases"]["generated"] >= len(operations)
