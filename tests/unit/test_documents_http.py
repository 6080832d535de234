"""The documents routes over the app with fakes: auth, the upload contract, limits, errors,
and a running app that sees its own changes (search) without a restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit

KEY = "unit-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
POLICY = (
    b"# Trade-in Programme\n\nOld headphones earn a trade-in voucher worth 15% of the new item.\n"
)
MAX_BODY, MAX_UPLOAD = 2048, 16384


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = fake_settings(
        tmp_path,
        server={"max_body_bytes": MAX_BODY, "max_upload_bytes": MAX_UPLOAD},
        admin_api_key=KEY,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _upload(client: TestClient, *files: tuple[str, bytes], **kw: Any) -> Any:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/v1/admin/documents", files=parts, headers=kw.get("headers", AUTH))


def _bm25_hits(client: TestClient, query: str) -> list[str]:
    r = client.post("/v1/search", json={"query": query, "mode": "bm25", "k": 5})
    assert r.status_code == 200, r.text
    return [p["doc_id"] for p in r.json()["passages"]]


def test_every_route_needs_the_key(client: TestClient) -> None:
    for method, path in [
        ("POST", "/v1/admin/documents"),
        ("GET", "/v1/admin/documents"),
        ("DELETE", "/v1/admin/documents/anything"),
        ("POST", "/v1/admin/reindex"),
    ]:
        r = client.request(method, path, headers={"Authorization": "Bearer wrong-key-0123456789"})
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "unauthorized"


def test_upload_list_search_delete_round_trip(client: TestClient) -> None:
    assert _bm25_hits(client, "trade-in voucher") == []
    r = _upload(client, ("trade-in.en.md", POLICY), ("broken.jsonl", b"{nope\n"))
    assert r.status_code == 200, r.text
    body = r.json()
    good, broken = body["files"]
    assert (good["status"], good["error"], good["chunks_written"]) == ("added", None, 1)
    assert good["documents"] == [
        {"doc_id": "trade-in.en.md", "title": "Trade-in Programme", "change": "added", "chunks": 1}
    ]
    assert broken["status"] == "failed"
    assert broken["error"].startswith("line 1: invalid JSON")
    assert body["failed"] == 1

    assert _bm25_hits(client, "trade-in voucher") == ["trade-in.en.md"]  # no restart needed

    listed = client.get("/v1/admin/documents", headers=AUTH).json()
    assert listed["total"] == 1
    (doc,) = listed["documents"]
    assert doc["doc_id"] == "trade-in.en.md"
    assert (doc["chunks"], doc["lang"], doc["kind"], doc["upload"]) == (
        1,
        "en",
        "policy",
        doc["doc_id"],
    )

    again = _upload(client, ("trade-in.en.md", POLICY)).json()
    assert (again["chunks_written"], again["files"][0]["status"]) == (0, "unchanged")

    r = client.delete("/v1/admin/documents/trade-in.en.md", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deleted": ["trade-in.en.md"],
        "chunks_deleted": 1,
        "file_removed": "trade-in.en.md",
    }
    assert _bm25_hits(client, "trade-in voucher") == []
    r = client.delete("/v1/admin/documents/trade-in.en.md", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "document_not_found"


def test_ids_with_slashes_and_rows_of_a_file(client: TestClient) -> None:
    rows = b'{"id": "a/1", "text": "Umbrellas."}\n{"id": "a/2", "text": "Raincoats."}\n'
    assert _upload(client, ("rows.jsonl", rows)).status_code == 200
    r = client.delete("/v1/admin/documents/a/1", headers=AUTH)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "document_in_file"
    r = client.delete("/v1/admin/documents/a/1?file=true", headers=AUTH)
    assert r.status_code == 200
    assert sorted(r.json()["deleted"]) == ["a/1", "a/2"]


def test_upload_limit_is_its_own(client: TestClient) -> None:
    big = b"# Big\n\n" + b"word " * (MAX_BODY // 5 + 100)  # over the body limit, under uploads'
    assert MAX_BODY < len(big) < MAX_UPLOAD
    assert _upload(client, ("big.md", big)).status_code == 200
    r = _upload(client, ("huge.md", b"x" * (MAX_UPLOAD + 1)))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    r = client.post("/v1/search", json={"query": "x" * MAX_BODY})  # other routes keep theirs
    assert r.status_code == 413


def test_wrong_content_is_a_422(client: TestClient) -> None:
    url = "/v1/admin/documents"
    cases = [
        client.post(url, json={"files": ["a.md"]}, headers=AUTH),
        client.post(url, data={"files": "not a file"}, headers=AUTH),
        client.post(url, files={"other": ("a.md", b"# A", "text/markdown")}, headers=AUTH),
        client.post(
            url,
            content=b"--b\r\nnot a part",
            headers={**AUTH, "content-type": "multipart/form-data; boundary=b"},
        ),
        client.post(
            url,
            files=[("files", (f"f{i}.md", b"# F", "text/markdown")) for i in range(21)],
            headers=AUTH,
        ),
    ]
    for r in cases:
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_upload"


def test_delete_rejects_control_characters(client: TestClient) -> None:
    r = client.delete("/v1/admin/documents/a%00b", headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_reindex_after_a_write_behind_the_servers_back(client: TestClient) -> None:
    assert _upload(client, ("trade-in.en.md", POLICY)).status_code == 200
    container = client.app.state.container  # type: ignore[attr-defined]
    container.store.delete_documents(["trade-in.en.md"])  # another writer lost it
    r = client.post("/v1/admin/reindex", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["files"], body["documents"], body["chunks_written"]) == (1, 1, 1)
    assert body["bm25_chunks"] == container.store.count() == 1
    assert _bm25_hits(client, "trade-in voucher") == ["trade-in.en.md"]


def test_searches_during_uploads_and_deletes_never_fail(client: TestClient) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def search() -> None:
        while not done.is_set():
            try:
                r = client.post("/v1/search", json={"query": "trade-in voucher", "k": 3})
                assert r.status_code == 200, r.text
                hits = [p["doc_id"] for p in r.json()["passages"]]
                assert set(hits) <= {"trade-in.en.md"}
            except BaseException as exc:  # reported below, with the thread's failure
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            assert _upload(client, ("trade-in.en.md", POLICY)).status_code == 200
            r = client.delete("/v1/admin/documents/trade-in.en.md", headers=AUTH)
            assert r.status_code == 200
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []
