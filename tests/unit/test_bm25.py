from pathlib import Path

import pytest

from app.domain import Chunk
from app.retrieval.bm25 import BM25Index, fingerprint, refresh_bm25
from app.retrieval.store import MemoryStore

pytestmark = pytest.mark.unit


def _chunk(cid: str, text: str, **meta: str) -> Chunk:
    return Chunk(cid, cid.split("#")[0], text, {"title": "", "content_hash": "h", **meta})


CHUNKS = [
    _chunk("ret#0", "Items can be returned within 30 days of delivery.", lang="en"),
    _chunk("ship#0", "Free shipping on orders over 99 yuan.", lang="en"),
    _chunk("ret-zh#0", "自收货之日起三十天内可以申请退货。", lang="zh"),
    _chunk("ship-zh#0", "订单满99元包邮，否则运费10元。", lang="zh"),
]


def test_english_and_chinese_queries_find_their_passage() -> None:
    index = BM25Index.build(CHUNKS)
    assert index.search("how many days to return", 1)[0][0] == "ret#0"
    assert index.search("退货要在几天内", 1)[0][0] == "ret-zh#0"
    assert index.search("运费多少", 1)[0][0] == "ship-zh#0"


def test_filters_restrict_results() -> None:
    index = BM25Index.build(CHUNKS)
    hits = index.search("99", 5, {"lang": "zh"})
    assert [cid for cid, _ in hits] == ["ship-zh#0"]


def test_no_match_returns_nothing() -> None:
    assert BM25Index.build(CHUNKS).search("volcano", 3) == []


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = BM25Index.build(CHUNKS)
    index.save(tmp_path / "bm25.json.gz")
    loaded = BM25Index.load(tmp_path / "bm25.json.gz")
    assert loaded is not None
    assert loaded.fingerprint == index.fingerprint
    assert loaded.search("shipping", 2) == index.search("shipping", 2)


def test_refresh_rebuilds_only_when_store_changed(tmp_path: Path) -> None:
    import numpy as np

    store = MemoryStore()
    store.upsert(CHUNKS, np.zeros((len(CHUNKS), 4), dtype=np.float32))
    path = tmp_path / "bm25.json.gz"
    assert refresh_bm25(store, path) is True
    assert refresh_bm25(store, path) is False
    store.delete_documents(["ship"])
    assert refresh_bm25(store, path) is True
    loaded = BM25Index.load(path)
    assert loaded is not None
    assert loaded.fingerprint == fingerprint(store.scan())
    assert len(loaded) == 3
