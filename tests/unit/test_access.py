"""Who may call what: the API key on every agent and admin route, and CORS origins."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api import admin, agent
from app.api.auth import require_api_key
from app.config import ServerSettings, Settings
from app.main import create_app
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit

KEY = "unit-access-key-0123456789"
SHOP = "https://shop.example"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = fake_settings(tmp_path, admin_api_key=KEY, server={"cors_origins": [SHOP]})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _guarded(client: TestClient) -> list[tuple[str, str]]:
    """(method, path with placeholders filled) of every agent and admin route the app
    serves, read from its OpenAPI schema so that a route added anywhere is included."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "T-unknown", path))
        for path, operations in paths.items()
        if path.startswith(("/v1/agent", "/v1/admin"))
        for method in operations
    ]


def test_every_agent_and_admin_route_requires_the_key(client: TestClient) -> None:
    routes = _guarded(client)
    assert len(routes) >= 5  # tickets, ticket, reply, close, stats: a new route is caught too
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "x"}):
            r = client.request(method, path, headers=headers, json={"text": "hi"})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
        # with the key the route itself answers (200, a 404 for the unknown ticket, a 422)
        r = client.request(method, path, headers={"X-API-Key": KEY}, json={"text": "hi"})
        assert r.status_code not in (401, 403), (method, path, r.text)


@pytest.mark.parametrize("router", [agent.router, admin.router])
def test_the_key_check_is_a_dependency_of_each_route(router: APIRouter) -> None:
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        assert require_api_key in [d.call for d in route.dependant.dependencies], route.path


def test_a_preflight_from_the_shop_is_allowed(client: TestClient) -> None:
    r = client.options(
        "/v1/chat",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-customer-token",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "x-customer-token" in r.headers["access-control-allow-headers"].lower()
    reply = client.post("/v1/chat", json={"message": "hello"}, headers={"Origin": SHOP})
    assert reply.headers["access-control-allow-origin"] == SHOP


@pytest.mark.parametrize("origin", ["https://evil.example", "http://shop.example"])
def test_other_origins_get_no_allow_header(client: TestClient, origin: str) -> None:
    r = client.options(
        "/v1/chat",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    reply = client.post("/v1/chat", json={"message": "hello"}, headers={"Origin": origin})
    assert "access-control-allow-origin" not in reply.headers


def test_methods_other_than_get_and_post_are_not_allowed(client: TestClient) -> None:
    r = client.options(
        "/v1/chat", headers={"Origin": SHOP, "Access-Control-Request-Method": "DELETE"}
    )
    assert r.status_code == 400


def test_by_default_no_origin_is_allowed(tmp_path: Path) -> None:
    with TestClient(create_app(fake_settings(tmp_path))) as client:
        r = client.options(
            "/v1/chat", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in r.headers
        reply = client.post("/v1/chat", json={"message": "hello"}, headers={"Origin": SHOP})
        assert reply.status_code == 200
        assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize(
    "origin", ["*", "https://shop.example/", "shop.example", "https://shop.example/widget"]
)
def test_a_wildcard_or_a_url_is_refused_as_an_origin(origin: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        ServerSettings(cors_origins=[origin])


def test_the_origins_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHOPDESK_SERVER__CORS_ORIGINS", '["https://a.example", "http://[::1]:8080"]'
    )
    assert Settings().server.cors_origins == ["https://a.example", "http://[::1]:8080"]
