"""What a tool gets for one turn and what it hands back to the conversation layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any, Literal

from app.domain import Citation, Lang

Task = Literal["order_status", "return"]
Pending = Literal["verify", "which_order", "confirm_return"]


@dataclass
class ToolState:
    """The slot-filling state kept on the conversation between turns (`tool_state`).

    `task` is what the customer asked for; `pending` what the bot is waiting for;
    `order_id`, `email`, `phone` what the customer has claimed so far (not yet
    verified); `failures` how many verifications failed; `return_skus` the lines a
    confirmed return will cover.
    """

    task: Task | None = None
    pending: Pending | None = None
    order_id: str | None = None
    email: str | None = None
    phone: str | None = None
    failures: int = 0
    return_skus: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> ToolState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in known})

    def dump(self) -> dict[str, Any] | None:
        """What to keep on the conversation; None when there is nothing to keep."""
        return None if self == ToolState() else asdict(self)

    def clear_task(self) -> None:
        """Forget the request in progress; failed verifications are kept."""
        self.task, self.pending, self.order_id, self.return_skus = None, None, None, []
        self.email = self.phone = None


@dataclass
class ToolContext:
    """One turn as a tool sees it. `customer_id` is set only for a verified customer."""

    message: str
    lang: Lang
    intent: str
    customer_id: str | None
    state: ToolState
    today: date


@dataclass
class ToolReply:
    text: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    verified_customer: str | None = None
    """Set when this turn verified the customer (the conversation is bound to them)."""
