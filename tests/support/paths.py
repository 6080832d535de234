"""Where things are: the repository, the test data, the sample shop and the model cache."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MODEL_CACHE = Path(os.environ.get("SHOPDESK_MODEL_CACHE_DIR", ROOT / "var" / "models"))
SAMPLE_SHOP = ROOT / "data" / "sample_shop"
SAMPLE_KB = SAMPLE_SHOP / "kb"
SAMPLE_ORDERS = SAMPLE_SHOP / "orders.jsonl"
