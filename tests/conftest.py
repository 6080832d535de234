from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def shop_dir() -> Path:
    """A tiny bilingual shop (policies, FAQ, a product, html, txt, csv) for tests."""
    return DATA / "shop"
