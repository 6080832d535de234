"""The documents API against a real server of its own: real chromadb, embedder and model.

The server runs over a copy of the ingested sample shop (the 0.5B model: no answer is
generated here). A new bilingual trade-in policy is uploaded with a broken file beside
it; the running server must list it, retrieve it for questions in both languages,
write nothing when it is uploaded again, and forget it when it is deleted, all
without a restart.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import own_server
from tests.support.shopdesk import ADMIN_KEY

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
SMALL_MODEL = {"SHOPDESK_LLM__MODEL": "qwen2.5-coder-0.5b"}
EN_NAME, ZH_NAME = "trade-in.en.md", "以旧换新.zh.md"
EN = """---
title: Trade-in Programme
---
# Trade-in Programme

Send us your old headphones or earbuds, in any condition, and we give you a trade-in
voucher worth 15% of the price of a new pair bought from us. The voucher is emailed
within 5 working days after the old pair arrives and is valid for 90 days.
"""
ZH = """---
title: 以旧换新计划
---
# 以旧换新计划

把旧耳机或旧耳塞寄给我们，无论新旧程度，都可获得一张以旧换新抵用券，
面值为在本店购买新耳机价格的百分之十五。旧耳机签收后五个工作日内发放，有效期九十天。
"""
EN_QUESTION = "Can I trade in my old headphones for a voucher?"
ZH_QUESTION = "旧耳机可以以旧换新吗？"


@pytest.fixture(scope="module")
def shop(
    first_ingest: subprocess.CompletedProcess[str],
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    own = tmp_path_factory.mktemp("documents") / "shop"
    with own_server(data_dir, own, SMALL_MODEL) as (url, _pid):
        yield url, own


def _upload(url: str, *files: tuple[str, bytes]) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{url}/v1/admin/documents", files=parts, headers=AUTH, timeout=300)


def _search(url: str, query: str, mode: str = "hybrid") -> list[str]:
    r = httpx.post(f"{url}/v1/search", json={"query": query, "k": 5, "mode": mode}, timeout=60)
    assert r.status_code == 200, r.text
    return [p["doc_id"] for p in r.json()["passages"]]


def _listed(url: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{url}/v1/admin/documents", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return {d["doc_id"]: d for d in r.json()["documents"]}


def test_without_the_key_every_route_is_401(shop: tuple[str, Path]) -> None:
    url, _ = shop
    for method, path in [
        ("POST", "/v1/admin/documents"),
        ("GET", "/v1/admin/documents"),
        ("DELETE", f"/v1/admin/documents/{EN_NAME}"),
        ("POST", "/v1/admin/reindex"),
    ]:
        r = httpx.request(method, f"{url}{path}", timeout=30)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json() == {
            "error": {"code": "unauthorized", "message": r.json()["error"]["message"]}
        }


def test_upload_search_reupload_delete(shop: tuple[str, Path]) -> None:
    url, data_dir = shop
    before = _listed(url)
    assert EN_NAME not in before
    assert EN_NAME not in _search(url, EN_QUESTION)

    r = _upload(
        url,
        (EN_NAME, EN.encode()),
        (ZH_NAME, ZH.encode()),
        ("catalogue.pdf", b"%PDF-1.7\nthis is no PDF at all"),
    )
    assert r.status_code == 200, r.text
    files = {f["filename"]: f for f in r.json()["files"]}
    assert files[EN_NAME]["status"] == files[ZH_NAME]["status"] == "added"
    assert files[EN_NAME]["chunks_written"] > 0
    assert files["catalogue.pdf"]["status"] == "failed"
    assert "PDF" in files["catalogue.pdf"]["error"]
    assert files["catalogue.pdf"]["documents"] == []

    listed = _listed(url)
    assert set(listed) - set(before) == {EN_NAME, ZH_NAME}  # the broken file added nothing
    en, zh = listed[EN_NAME], listed[ZH_NAME]
    assert (en["title"], en["lang"], en["kind"]) == ("Trade-in Programme", "en", "policy")
    assert (zh["title"], zh["lang"]) == ("以旧换新计划", "zh")
    assert en["chunks"] == files[EN_NAME]["documents"][0]["chunks"] > 0
    assert len(en["content_hash"]) == len(zh["content_hash"]) == 16
    assert en["content_hash"] != zh["content_hash"]
    assert (data_dir / "uploads" / EN_NAME).read_text(encoding="utf-8") == EN

    # The running server retrieves the new passages, dense and BM25, in both languages.
    assert _search(url, EN_QUESTION)[0] == EN_NAME
    assert _search(url, ZH_QUESTION)[0] == ZH_NAME
    assert EN_NAME in _search(url, "trade-in voucher", mode="bm25")

    again = _upload(url, (EN_NAME, EN.encode()), (ZH_NAME, ZH.encode()))
    assert again.status_code == 200, again.text
    assert again.json()["chunks_written"] == 0
    assert {f["status"] for f in again.json()["files"]} == {"unchanged"}

    r = httpx.delete(f"{url}/v1/admin/documents/{EN_NAME}", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deleted": [EN_NAME],
        "chunks_deleted": en["chunks"],
        "file_removed": EN_NAME,
    }
    assert not (data_dir / "uploads" / EN_NAME).exists()
    for mode in ("hybrid", "dense", "bm25"):
        assert EN_NAME not in _search(url, EN_QUESTION, mode=mode), mode
    assert EN_NAME not in _listed(url)
    assert _search(url, ZH_QUESTION)[0] == ZH_NAME  # the other upload stays

    r = httpx.delete(f"{url}/v1/admin/documents/{EN_NAME}", headers=AUTH, timeout=60)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "document_not_found"

    # A reindex writes nothing more, and its BM25 index holds exactly the stored chunks.
    r = httpx.post(f"{url}/v1/admin/reindex", headers=AUTH, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["files"], body["chunks_written"], body["failures"]) == (1, 0, [])
    assert body["bm25_chunks"] == sum(d["chunks"] for d in _listed(url).values())
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
