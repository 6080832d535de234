"""The widget's files over HTTP: what is served, with which headers, and nothing else.

The page itself is driven in a real browser by tests/e2e/test_widget.py.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api import errors, widget
from app.config import Settings
from app.main import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    errors.install(app)
    app.include_router(widget.router)
    with TestClient(app) as client:
        yield client


def test_the_page_is_served_with_a_self_only_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_page_loads_only_its_own_files(client: TestClient) -> None:
    html = client.get("/").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, html
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//", "/")), ref  # relative, same origin
        r = client.get("/" + ref)
        assert r.status_code == 200, ref
    assert "<script>" not in html
    assert "<style" not in html
    assert " style=" not in html


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/assets/chat.js", "text/javascript"),
        ("/assets/strings.js", "text/javascript"),
        ("/assets/chat.css", "text/css"),
        ("/widget.js", "text/javascript"),
    ],
)
def test_scripts_and_styles_have_their_types(client: TestClient, path: str, kind: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(kind)
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/assets/index.html", "/assets/widget.py", "/assets/..%2Fapi%2Fwidget.py", "/assets/x"]
)
def test_no_other_file_is_served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_every_ui_string_exists_in_both_languages() -> None:
    table = (widget.WEB_DIR / "strings.js").read_text(encoding="utf-8")
    blocks = re.findall(r"\n  (en|zh): \{(.*?)\n  \}", table, re.S)
    keys = {name: re.findall(r"^\s+(\w+):", body, re.M) for name, body in blocks}
    assert set(keys) == {"en", "zh"}
    assert keys["en"] == keys["zh"]
    used = set()
    for name in ("index.html", "chat.js"):
        text = (widget.WEB_DIR / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n(?:-label)?="(\w+)"', text))
        used |= set(re.findall(r"\bT\.(\w+)", text))
        used |= set(re.findall(r'\bt\("(\w+)"', text))
    assert used, "no strings found in use"
    assert used <= set(keys["en"]), used - set(keys["en"])


def test_the_app_serves_the_page_at_the_root(tmp_path: Path) -> None:
    # No lifespan (no `with`): the widget's routes need no models.
    app = TestClient(create_app(Settings(data_dir=tmp_path)))
    r = app.get("/")
    assert r.status_code == 200
    assert "Content-Security-Policy" in r.headers
    assert app.get("/widget.js").status_code == 200
    assert app.get("/openapi.json").json()["paths"].keys().isdisjoint({"/", "/widget.js"})
