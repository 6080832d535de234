"""What every chat route shares: the turn a request asks for, and the checks that must
come before a stream's 200.

`/v1/chat`, `/v1/chat/stream` and the OpenAI-compatible `/v1/chat/completions` are one
turn through one `TurnPipeline`; only the shape of the request and reply differs.
Keeping these steps in one place keeps their limits, status codes and customer checks
the same on every route.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from app.api.errors import ApiError
from app.api.schemas import ErrorBody, Filters, is_blank
from app.config import Settings
from app.domain import Lang
from app.orchestrator import SessionNotFound, TurnPipeline, TurnRequest, check_owner
from app.tools.identity import InvalidToken, verify_token

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 429, 502, 503, 504)
}
"""The statuses a chat route may answer besides 200, each in the one error shape."""


def turn_request(
    message: str,
    session_id: str | None,
    lang: Lang | None,
    filters: Filters,
    settings: Settings,
    token: str | None,
) -> TurnRequest:
    """The turn for a validated request: the message must hold something readable and fit
    the server's limit (422 `empty_message`, `message_too_long`); a token must verify."""
    message = message.strip()
    if is_blank(message):
        raise ApiError(422, "empty_message", "message must not be empty")
    limit = settings.server.max_message_chars
    if len(message) > limit:
        raise ApiError(422, "message_too_long", f"message is longer than {limit} characters")
    return TurnRequest(message, session_id, lang, filters, customer_id(token, settings))


def customer_id(token: str | None, settings: Settings) -> str | None:
    """The customer a valid token names; a token that does not verify is a 401."""
    if token is None:
        return None
    secret = settings.tools.customer_token_secret
    if secret is None:
        raise ApiError(401, "invalid_customer_token", "customer tokens are not enabled here")
    try:
        return verify_token(token, secret.get_secret_value())
    except InvalidToken as exc:
        raise ApiError(401, "invalid_customer_token", f"customer token rejected: {exc}") from None


async def check_before_stream(pipeline: TurnPipeline, turn: TurnRequest) -> None:
    """Raise what the JSON route would answer with a status (a full queue's 503, an
    unknown session's 404, another customer's session's 403): on a stream these must
    come before the 200 has been sent."""
    pipeline.gate.check()
    if turn.session_id is not None:
        found = await run_in_threadpool(pipeline.store.get_conversation, turn.session_id)
        if found is None:
            raise SessionNotFound(turn.session_id)
        check_owner(found, turn.customer_id)
