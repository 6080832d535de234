"""Server-sent events for both chat streams: the events, then `data: [DONE]`.

Once a stream's 200 has gone out a failure cannot change the status: it ends the stream
with one last event in the one error shape (`errors.describe`), then `[DONE]`, never
with a broken connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse

from app.api.errors import describe

PING_S = 15
"""A comment line this often keeps proxies from closing a quiet stream."""


def event_stream(
    events: AsyncIterator[dict[str, str]], where: str, *, error_event: str | None = None
) -> EventSourceResponse:
    """`events` as SSE; a failure becomes a last event (named `error_event`, or unnamed
    as OpenAI clients expect) holding `{"error": {"code", "message"}}`."""

    async def framed() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in events:
                yield event
        except Exception as exc:
            failure = {"data": json.dumps(describe(exc, where).body())}
            yield failure if error_event is None else {"event": error_event, **failure}
        yield {"data": "[DONE]"}

    return EventSourceResponse(framed(), ping=PING_S)
