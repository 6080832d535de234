"""The agent and admin routes' key: `Authorization: Bearer KEY` or `X-API-Key: KEY`.

No key configured means those routes are switched off (403), never open.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from app.api.errors import ApiError
from app.config import Settings


def require_api_key(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.admin_api_key is None:
        raise ApiError(
            403, "admin_disabled", "agent and admin routes are off: set SHOPDESK_ADMIN_API_KEY"
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key", "")
    expected = settings.admin_api_key.get_secret_value()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer)")
