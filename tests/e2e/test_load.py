"""`make loadtest` in short: 50 shoppers and one abusive client for 45 s on a real server.

The same code as `python -m eval.loadtest` (its own copy of the shop, the
sample orders, the rate limit on, X-Forwarded-For per client); answers are
short and the model's queue is 2, so that the turns still queued at the end
finish soon.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval import loadtest
from tests.support.paths import ROOT
from tests.support.shopdesk import env

pytestmark = pytest.mark.e2e


def test_fifty_clients_for_45_s_lose_nothing(
    first_ingest: subprocess.CompletedProcess[str],
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = loadtest.LoadPlan(clients=50, duration_s=45.0)
    # short answers and a short queue: the turns still waiting at the end finish soon
    # (a deadline counted from joining the queue could turn a long wait into a 504, which
    # tests/unit/test_model_queue.py covers; here every status must be 200, 429 or 503)
    server_env = env(tmp_path) | {
        "SHOPDESK_LLM__MAX_TOKENS": "64",
        "SHOPDESK_LLM__QUEUE_SIZE": "2",
        "SHOPDESK_LLM__TIMEOUT_S": "600",
    }
    out = tmp_path / "loadtest"
    report = loadtest.run(data_dir, out, plan, env=server_env, sample=ROOT / "data" / "sample_shop")
    with capsys.disabled():
        sys.stderr.write("\n" + loadtest.markdown(report))

    shoppers, abusive = report["shoppers"], report["abusive"]
    # every request sent was answered and counted: 200, 429 or 503, nothing else
    assert report["sent"] == report["recorded"] > plan.clients
    counted = sum(shoppers[k] + abusive[k] for k in loadtest.CATEGORIES)
    assert counted == report["recorded"]
    assert shoppers["504"] == abusive["504"] == 0  # the deadline is far off here
    assert shoppers["lost"] == abusive["lost"] == 0, json.dumps(report["failures"])
    assert shoppers["other"] == abusive["other"] == 0, json.dumps(report["failures"])
    # the limit is per client: shoppers who pause never meet it, the abusive client does
    assert shoppers["429"] == 0
    assert shoppers["200"] > 0
    assert abusive["429"] > 0
    assert 0 < abusive["200"] <= abusive["allowed_at_most"]
    # the memory was sampled over the whole run
    assert report["memory"]["samples"] >= 45 / loadtest.SAMPLE_EVERY_S
    assert (out / "report.md").exists()
