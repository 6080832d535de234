import os
from pathlib import Path

import pytest

from tests.support.paths import DATA

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Every test client shares one address (TestClient, loopback), so the per-client chat rate
# limit is off unless a test sets it (tests/unit/test_ratelimit.py, tests/e2e/test_rate_limit.py).
os.environ.setdefault("SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE", "0")


@pytest.fixture
def shop_dir() -> Path:
    """A tiny bilingual shop (policies, FAQ, a product, html, txt, csv) for tests."""
    return DATA / "shop"


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's kind comes from its folder, so `pytest -m unit` (`make test-unit`) cannot
    miss a file that forgot its `pytestmark`."""
    for item in items:
        kind = item.path.parent.name
        if kind in ("unit", "integration", "e2e") and item.get_closest_marker(kind) is None:
            item.add_marker(kind)
