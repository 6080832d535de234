"""The chat widget: `GET /` is a small chat page a shop embeds (iframe or `/widget.js`).

The page is plain files in `app/web/` (no build step, nothing from a CDN: it must work on
a machine with no internet) and talks to this server's own API with relative URLs, so it
needs no CORS. It is served with a Content-Security-Policy that allows scripts, styles and
requests to this origin only: even if model output ever reached the page as markup, it
could not run script or send data elsewhere. `frame-ancestors` is left open on purpose,
because being framed by the shop's pages is what the page is for.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page changes with the server's version, not per request; revalidate each load.
    "Cache-Control": "no-cache",
}
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
# The page's own files, by the name in its URL. Nothing else under app/web is served, so
# no path a client sends can reach another file.
ASSETS = {
    "chat.js": "text/javascript; charset=utf-8",
    "strings.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

router = APIRouter(tags=["widget"], include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    """The chat page (`?lang=zh|en`; default: the browser's language)."""
    return FileResponse(
        WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


@router.get("/widget.js")
async def loader() -> FileResponse:
    """The script a shop's page includes: a floating button that opens the page in an
    iframe. Loaded cross-origin by design, so the resource policy says so."""
    return FileResponse(
        WEB_DIR / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers=_ASSET_HEADERS | {"Cross-Origin-Resource-Policy": "cross-origin"},
    )


@router.get("/assets/{name}")
async def asset(name: str) -> FileResponse:
    """The page's script, strings and styles."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no widget file {name[:64]!r}")
    return FileResponse(WEB_DIR / name, media_type=media_type, headers=_ASSET_HEADERS)
