"""Measures the tool router: does a first message go to orders, returns, catalogue or RAG?

    python -m eval.routing [--rows data/dialogue/routing.jsonl]
        [--heldout data/dialogue/routing_heldout.jsonl]
        [--bitext ../shared/data/golden/golden_dev.jsonl] [--out var/eval-runs/routing]

Each message is classified by the same intent model the server uses (trained on
`data/dialogue/intents.jsonl`, which shares no message with the routing rows) and routed
by `app.tools.router.decide` with a fresh conversation state. Reported per language and
per expected route, with the confusion between routes. The Bitext rows of the shared
golden file whose intent names a route (`track_order` → orders, `get_refund` → returns,
`check_refund_policy` → rag) are an external English check.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.tools.base import ToolState
from app.tools.router import ROUTES, decide

# Bitext intents with a clear route. Questions about the shop's rules and accounts must
# stay with retrieval: a tool firing on them is an error too.
BITEXT_ROUTES = {
    "track_order": "orders",
    "get_refund": "returns",
    **dict.fromkeys(
        (
            "check_refund_policy",
            "check_cancellation_fee",
            "check_payment_methods",
            "delivery_period",
            "delivery_options",
            "create_account",
            "delete_account",
            "edit_account",
            "switch_account",
            "recover_password",
            "registration_problems",
            "newsletter_subscription",
            "set_up_shipping_address",
            "payment_issue",
            "review",
        ),
        "rag",
    ),
}


SETS = ("dev", "held-out", "bitext")
"""dev: the rows the router's rules were revised on; held-out: written after the rules
were frozen and never used to change them; bitext: the shared data's Bitext rows."""


def load_rows(path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("route") not in ROUTES or row.get("lang") not in ("en", "zh"):
            raise ValueError(f"{path}:{number}: need route in {ROUTES} and lang en|zh")
        rows.append({"text": row["text"], "route": row["route"], "lang": row["lang"]})
    return rows


def load_bitext(path: Path) -> list[dict[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        intent = (row.get("origin") or {}).get("intent")
        if intent in BITEXT_ROUTES:
            out.append({"text": row["question"], "route": BITEXT_ROUTES[intent], "lang": "en"})
    return out


def score(rows: list[dict[str, str]], predicted: Sequence[str]) -> dict[str, Any]:
    by_lang: dict[str, list[bool]] = defaultdict(list)
    by_route: dict[str, list[bool]] = defaultdict(list)
    confusion: Counter[tuple[str, str]] = Counter()
    for row, got in zip(rows, predicted, strict=True):
        ok = got == row["route"]
        by_lang[row["lang"]].append(ok)
        by_route[row["route"]].append(ok)
        confusion[(row["route"], got)] += 1
    tool = [
        ok
        for r, p in zip(rows, predicted, strict=True)
        if r["route"] != "rag"
        for ok in [p == r["route"]]
    ]
    return {
        "n": len(rows),
        "accuracy": sum(p == r["route"] for r, p in zip(rows, predicted, strict=True)) / len(rows),
        "tool_routes_accuracy": sum(tool) / len(tool) if tool else None,
        "languages": {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in by_lang.items()},
        "routes": {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in by_route.items()},
        "confusion": {f"{a}->{b}": n for (a, b), n in sorted(confusion.items()) if a != b},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Tool routing", "", "| set | group | n | accuracy |", "|---|---|---|---|"]
    for name in SETS:
        part = report.get(name)
        if not part:
            continue
        lines.append(f"| {name} | all | {part['n']} | {part['accuracy']:.3f} |")
        if part["tool_routes_accuracy"] is not None:
            n_tool = sum(v["n"] for k, v in part["routes"].items() if k != "rag")
            lines.append(
                f"| {name} | tool routes | {n_tool} | {part['tool_routes_accuracy']:.3f} |"
            )
        for lang, v in sorted(part["languages"].items()):
            lines.append(f"| {name} | lang {lang} | {v['n']} | {v['accuracy']:.3f} |")
        for route, v in sorted(part["routes"].items()):
            lines.append(f"| {name} | route {route} | {v['n']} | {v['accuracy']:.3f} |")
    for name in SETS:
        part = report.get(name)
        if part and part["confusion"]:
            pairs = ", ".join(f"{k} x{v}" for k, v in part["confusion"].items())
            lines += ["", f"Misrouted ({name}): {pairs}"]
    if report.get("errors"):
        lines += ["", "## Misrouted messages", ""]
        lines += [
            f"- {e['text']} — expected {e['route']}, got {e['got']} (intent {e['intent']})"
            for e in report["errors"]
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.routing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=Path, default=Path("data/dialogue/routing.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data/dialogue/routing_heldout.jsonl"))
    parser.add_argument(
        "--bitext", type=Path, default=Path("../shared/data/golden/golden_dev.jsonl")
    )
    parser.add_argument("--out", type=Path, default=Path("var/eval-runs/routing"))
    args = parser.parse_args(argv)

    from app.config import Settings
    from app.container import build_embedder, embedding_name
    from app.dialogue.analyse import build_intent_model

    started = time.monotonic()
    settings = Settings()
    embedder = build_embedder(settings)
    classifier = build_intent_model(
        embedder, settings.dialogue, settings.model_cache_dir, embedding_name(settings)
    )
    pattern = settings.tools.order_id_pattern
    report: dict[str, Any] = {"errors": []}
    sets = {"dev": load_rows(args.rows)}
    if args.heldout.exists():
        sets["held-out"] = load_rows(args.heldout)
    if args.bitext.exists():
        sets["bitext"] = load_bitext(args.bitext)
    for name, rows in sets.items():
        predicted = []
        for row in rows:
            intent = classifier.predict(row["text"]).label
            got = decide(row["text"], intent, ToolState(), pattern)
            predicted.append(got)
            if got != row["route"]:
                report["errors"].append({**row, "got": got, "intent": intent, "set": name})
        report[name] = score(rows, predicted)
    report["seconds"] = time.monotonic() - started
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
