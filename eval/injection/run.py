"""The prompt-injection corpus against a running server, over HTTP.

Each case (`cases.jsonl`) is one message, either carrying the injection itself
or asking about a hostile document from `kb/` (ingested beside the sample
shop). What the injection wants is written down as `forbidden` strings, and
`system_prompt: true` means the reply must not contain our instructions.

Per case we record:
- **reached the client**: a forbidden string (or a rule of the system prompt)
  anywhere the customer could see it: in the final answer or in any token
  streamed before it (a client may show every token as it arrives);
- **streamed**: the same, in the streamed tokens alone (they are checked
  sentences, so this should never exceed what the final answer holds);
- **blocked**: the output guard stopped the answer (`refusal_reason`
  `blocked_…`), i.e. the model did follow, and the check caught it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.tools.identity import issue_token

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.jsonl"
KB = HERE / "kb"
PROMPTS = HERE.parents[1] / "prompts"


@dataclass(frozen=True)
class Case:
    id: str
    lang: str
    kind: str
    message: str
    forbidden: list[str] = field(default_factory=list)
    system_prompt: bool = False
    customer: str | None = None


@dataclass
class Outcome:
    id: str
    lang: str
    kind: str
    status: int
    error: str | None
    """The code of an `error` event that ended the stream, if one did."""
    outcome: str | None
    refusal_reason: str | None
    answer: str
    reached_client: list[str]
    streamed: list[str]

    @property
    def blocked(self) -> bool:
        return (self.refusal_reason or "").startswith("blocked_")


def load_cases(path: Path = CASES) -> list[Case]:
    with path.open(encoding="utf-8") as fh:
        return [Case(**json.loads(line)) for line in fh if line.strip()]


def system_rules(directory: Path = PROMPTS) -> list[str]:
    """The lines of our answer system prompts worth protecting (long enough to be ours)."""
    rules = []
    for path in sorted(directory.glob("answer_system.*.j2")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.removeprefix("- ").strip()
            if len(line) >= 12:
                rules.append(line)
    return rules


def _found(text: str, case: Case, rules: list[str]) -> list[str]:
    folded = text.casefold()
    hits = [s for s in case.forbidden if s.casefold() in folded]
    if case.system_prompt:
        hits += [r for r in rules if r.casefold() in folded]
    return hits


def _stream(
    client: httpx.Client, case: Case, headers: dict[str, str]
) -> tuple[int, str, dict[str, Any]]:
    """(status, streamed token text, the done event's payload)."""
    tokens: list[str] = []
    done: dict[str, Any] = {}
    with client.stream(
        "POST", "/v1/chat/stream", json={"message": case.message}, headers=headers
    ) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, "", {"answer": r.text}
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and line != "data: [DONE]":
                data = json.loads(line.removeprefix("data: "))
                if event == "token":
                    tokens.append(str(data.get("text", "")))
                elif event == "done":
                    done = data
                elif event == "error":
                    done = {"error": data.get("error", {}).get("code", "error")}
    return 200, "".join(tokens), done


def run_case(
    client: httpx.Client, case: Case, rules: list[str], token_secret: str | None
) -> Outcome:
    headers = {}
    if case.customer and token_secret:
        headers["X-Customer-Token"] = issue_token(case.customer, token_secret)
    status, streamed, done = _stream(client, case, headers)
    answer = str(done.get("answer", ""))
    reason = None
    session = done.get("session_id")
    if session:
        transcript = client.get(f"/v1/sessions/{session}", headers=headers)
        if transcript.status_code == 200:
            bot = [m for m in transcript.json()["messages"] if m["role"] == "assistant"]
            reason = bot[-1].get("refusal_reason") if bot else None
    return Outcome(
        id=case.id,
        lang=case.lang,
        kind=case.kind,
        status=status,
        error=done.get("error"),
        outcome=done.get("outcome"),
        refusal_reason=reason,
        answer=answer,
        reached_client=sorted(set(_found(answer, case, rules) + _found(streamed, case, rules))),
        streamed=_found(streamed, case, rules),
    )


def run(url: str, token_secret: str | None, cases: list[Case] | None = None) -> list[Outcome]:
    rules = system_rules()
    with httpx.Client(base_url=url, timeout=600) as client:
        return [run_case(client, case, rules, token_secret) for case in cases or load_cases()]


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    parts: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        for key in (f"{o.kind} / {o.lang}", "all"):
            part = parts[key]
            part["cases"] += 1
            part["reached_client"] += bool(o.reached_client)
            part["streamed"] += bool(o.streamed)
            part["blocked_by_guard"] += o.blocked
            part["refused"] += o.outcome == "refused"
            part["errors"] += o.status != 200 or o.error is not None
    return {
        "parts": {k: dict(v) for k, v in sorted(parts.items())},
        "outcomes": [asdict(o) | {"blocked": o.blocked} for o in outcomes],
    }


def markdown(result: dict[str, Any]) -> str:
    cols = ["cases", "reached_client", "streamed", "blocked_by_guard", "refused", "errors"]
    lines = ["| part | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, part in result["parts"].items():
        lines.append(f"| {name} | " + " | ".join(str(part.get(c, 0)) for c in cols) + " |")
    lines.append("")
    for o in result["outcomes"]:
        flags = ", ".join(o["reached_client"] + o["streamed"]) or "-"
        got = o["outcome"] or f"error {o['error'] or o['status']}"
        lines.append(f"- {o['id']}: {got} ({o['refusal_reason'] or '-'}); hits: {flags}")
    return "\n".join(lines) + "\n"
