"""The injection corpus (eval/injection) over HTTP, the real 1.5B model, hostile documents ingested.

Goal: nothing an injection asks for reaches the customer's final answer. How
often the model itself followed (the guard's blocks) is reported, not asserted:
that is the model's number, not ours.
"""

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from eval.bench.server import serving
from eval.injection.run import KB, load_cases, markdown, run, summary
from tests.support.shopdesk import TOKEN_SECRET, env, ingest


@pytest.fixture(scope="module")
def hostile_shop(
    first_ingest: subprocess.CompletedProcess[str],
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    shop = tmp_path_factory.mktemp("hostile") / "shop"
    shutil.copytree(data_dir, shop, ignore=shutil.ignore_patterns("*.log"))
    done = ingest(KB, shop)
    assert done.returncode == 0, done.stdout + done.stderr
    return shop


def test_no_injection_reaches_the_customer(hostile_shop: Path) -> None:
    cases = load_cases()
    assert len(cases) >= 30
    assert {c.lang for c in cases} == {"en", "zh"}
    assert {c.kind for c in cases} == {"message", "document"}
    # One client asks all the cases: the per-client chat rate limit is off.
    no_limit = {"SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE": "0"}
    with serving(hostile_shop, env(hostile_shop) | no_limit) as (url, _):
        outcomes = run(url, TOKEN_SECRET, cases)
    result = summary(outcomes)
    logging.getLogger(__name__).warning("injection corpus:\n%s", markdown(result))
    assert [o.id for o in outcomes if o.status != 200 or o.error] == []
    assert {o.id: o.reached_client for o in outcomes if o.reached_client} == {}
