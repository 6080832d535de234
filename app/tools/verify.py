"""Who is asking: a verified customer, or one who proves it with order number + contact.

The rule that keeps customers' data apart: until a claim is verified, every answer is
the same whether the order number exists, belongs to someone else, or was mistyped. The
bot asks for what is missing (the order number, the email or phone on it), counts
failed attempts, and after `max_attempts` stops trying and offers a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.prompts import PromptLibrary
from app.tools.base import ToolContext, ToolReply
from app.tools.identity import Claims, contact_matches, extract_claims
from app.tools.records import OrderRepository


@dataclass(frozen=True)
class Verified:
    customer_id: str
    order_id: str | None
    """The order the customer named (this turn or earlier), if any."""
    just_now: bool


class Verifier:
    def __init__(
        self,
        repo: OrderRepository,
        prompts: PromptLibrary,
        order_id_pattern: str,
        max_attempts: int,
    ) -> None:
        self._repo = repo
        self._prompts = prompts
        self._pattern = order_id_pattern
        self._max = max_attempts

    def check(self, ctx: ToolContext) -> Verified | ToolReply:
        """The verified customer, or the reply that asks for (or refuses) verification."""
        state = ctx.state
        claims = extract_claims(ctx.message, self._pattern)
        if claims.order_id:
            state.order_id = claims.order_id
        if ctx.customer_id is not None:
            return Verified(ctx.customer_id, state.order_id, just_now=False)
        if state.failures >= self._max:
            state.clear_task()
            return self._reply(ctx, "locked", action="verification_locked")
        state.email = claims.email or state.email
        state.phone = claims.phone or state.phone
        if state.order_id is None or (state.email is None and state.phone is None):
            state.pending = "verify"
            missing = [
                name
                for name, absent in (
                    ("order_id", state.order_id is None),
                    ("contact", state.email is None and state.phone is None),
                )
                if absent
            ]
            return self._reply(ctx, "ask", missing=missing, action="verification_requested")

        order = self._repo.get_order(state.order_id)
        customer = self._repo.get_customer(order.customer_id) if order is not None else None
        claimed = Claims(order_id=state.order_id, email=state.email, phone=state.phone)
        if order is not None and customer is not None and contact_matches(customer, claimed):
            state.pending, state.email, state.phone = None, None, None
            return Verified(customer.customer_id, order.order_id, just_now=True)

        state.failures += 1
        state.order_id = state.email = state.phone = None
        if state.failures >= self._max:
            state.clear_task()
            return self._reply(ctx, "locked", action="verification_locked")
        state.pending = "verify"
        return self._reply(ctx, "failed", action="verification_failed")

    def _reply(
        self, ctx: ToolContext, step: str, *, action: str, missing: list[str] | None = None
    ) -> ToolReply:
        text = self._prompts.render("verify", ctx.lang, step=step, missing=missing or [])
        return ToolReply(text, actions=[{"type": action}])
