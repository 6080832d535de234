"""Logging for every command: one line format, and personal data masked before any handler writes.

The mask is a filter on the handlers, not on loggers: a logger's filters never see the
records its children propagate to it, a handler's see every record it is given. It
renders the message (`msg % args`) and masks the result, and does the same for the
traceback, so what reaches a formatter has nothing left to leak. uvicorn is run with
`log_config=None` and its loggers propagate here, so its access lines (paths and query
strings) are masked the same way.

Every handler also gets `RequestIdFilter`, which puts the id of the request being served
on the record; the stderr handler writes it at the end of each line (`request_id=…`, `-`
outside a request) or, with `log_format="json"`, as a field of one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeAlias

from app.observability.request_id import NO_REQUEST, RequestIdFilter
from app.privacy import mask_pii
from app.tools.identity import DEFAULT_ORDER_ID_PATTERN

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_LOG_FORMAT = LOG_FORMAT + " request_id=%(request_id)s"
"""What the stderr handler writes: the id last, so that a line still starts as it did."""
HANDLER_NAME = "shopdesk"
LogFormat = Literal["text", "json"]
NOISY_LOGGERS = ("httpx", "chromadb", "sentence_transformers", "jieba", "urllib3")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


class PiiFilter(logging.Filter):
    """Masks a record in place: its rendered message, traceback and stack; never drops one."""

    def __init__(self, order_id_pattern: str = DEFAULT_ORDER_ID_PATTERN) -> None:
        super().__init__()
        self.order_id_pattern = order_id_pattern

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed logging call must not crash its caller; keep its parts
            message = f"{record.msg} (unformattable arguments: {record.args!r})"
        record.msg, record.args = self._mask(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self._mask(_format_exception(record.exc_info))
            record.exc_info = None  # so that no formatter renders the raw traceback again
        elif record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True

    def _mask(self, text: str) -> str:
        return mask_pii(text, order_id_pattern=self.order_id_pattern)


class MaskingFormatter(logging.Formatter):
    """`LOG_FORMAT` with tracebacks masked, for a handler used without `PiiFilter`."""

    def formatException(self, ei: _ExcInfo) -> str:
        return mask_pii(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return mask_pii(super().formatStack(stack_info))


class JsonFormatter(MaskingFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id
    (null outside a request), and `exception` / `stack` when the record has them.

    The message is the one `PiiFilter` masked; tracebacks are masked here as well. Newlines
    inside a message or traceback are escaped by JSON, so a record is always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id in (None, NO_REQUEST) else request_id,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def _format_exception(ei: _ExcInfo) -> str:
    return "".join(traceback.format_exception(*ei)).rstrip("\n")


def install_mask(handler: logging.Handler, order_id_pattern: str) -> None:
    """Put one `PiiFilter` on `handler` (replacing an earlier one, so set-up can run twice)."""
    for old in [f for f in handler.filters if isinstance(f, PiiFilter)]:
        handler.removeFilter(old)
    handler.addFilter(PiiFilter(order_id_pattern))


def install_request_id(handler: logging.Handler) -> None:
    """Put one `RequestIdFilter` on `handler` (set-up can run twice)."""
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return MaskingFormatter(REQUEST_LOG_FORMAT, defaults={"request_id": NO_REQUEST})


def setup_logging(
    verbose: bool = False,
    *,
    order_id_pattern: str = DEFAULT_ORDER_ID_PATTERN,
    log_format: LogFormat = "text",
) -> None:
    """Root logger at INFO (DEBUG when `verbose`) writing `REQUEST_LOG_FORMAT` (or JSON
    lines, `log_format="json"`) to stderr, every handler masked and given the request id,
    uvicorn's loggers sent through it, chatty libraries at WARNING.

    `order_id_pattern` is the shop's order number (`tools.order_id_pattern`).
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.set_name(HANDLER_NAME)
        root.addHandler(stderr)
    for ours in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        ours.setFormatter(formatter_for(log_format))  # others' handlers keep their format
    for name in UVICORN_LOGGERS:  # uvicorn's own handlers would write before our filter
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    handlers = list(root.handlers)
    for known in logging.Logger.manager.loggerDict.values():  # libraries with their own handlers
        if isinstance(known, logging.Logger):
            handlers.extend(known.handlers)
    if logging.lastResort is not None:  # used when a record finds no handler at all
        handlers.append(logging.lastResort)
    for handler in handlers:
        install_mask(handler, order_id_pattern)
        install_request_id(handler)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
