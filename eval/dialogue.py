"""Measures the dialogue layer's analysis step: intent and sentiment, per language.

    python -m eval.dialogue [--examples data/dialogue/intents.jsonl]
        [--sentiment data/dialogue/sentiment.jsonl]
        [--bitext ../shared/data/golden/golden_dev.jsonl] [--out var/eval-runs/dialogue]

The intent classifier is trained afresh on the ``train`` rows and scored on the
held-out ``test`` rows, with and without the explicit-request keyword rule; the
Bitext rows of the shared golden file are an external English check, mapped to
our labels by ``BITEXT_TO_INTENT`` and never trained on. Sentiment is scored on
the ``test`` rows of its file (the lexicon has no training step). Writes
report.md and report.json into --out and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.dialogue.intent import (
    INTENTS,
    Intent,
    IntentClassifier,
    explicit_human_request,
    load_examples,
)
from app.dialogue.sentiment import analyse_sentiment
from app.domain import Lang
from app.embeddings import Embedder

BITEXT_DATASET = "Bitext customer-support sample"
# Bitext's 27 intents onto our 10. Order changes (cancel, change, place) live with
# order status because the same order lookup answers them; fees of a cancellation
# are money back, so return_refund; invoices are payment paperwork. "review" asks
# how to leave feedback or a product review: a neutral account action, hence
# "other", not "complaint" (a complaint is a grievance that needs handling).
BITEXT_TO_INTENT: dict[str, Intent] = {
    "track_order": "order_status",
    "cancel_order": "order_status",
    "change_order": "order_status",
    "place_order": "order_status",
    "get_refund": "return_refund",
    "check_refund_policy": "return_refund",
    "track_refund": "return_refund",
    "check_cancellation_fee": "return_refund",
    "delivery_options": "shipping",
    "delivery_period": "shipping",
    "change_shipping_address": "shipping",
    "set_up_shipping_address": "shipping",
    "check_payment_methods": "payment",
    "payment_issue": "payment",
    "check_invoice": "payment",
    "get_invoice": "payment",
    "complaint": "complaint",
    "review": "other",
    "contact_human_agent": "human_agent",
    "contact_customer_service": "human_agent",
    "create_account": "other",
    "delete_account": "other",
    "edit_account": "other",
    "switch_account": "other",
    "recover_password": "other",
    "registration_problems": "other",
    "newsletter_subscription": "other",
}
_SHORT = {
    "product_question": "prod",
    "order_status": "order",
    "return_refund": "return",
    "shipping": "ship",
    "payment": "pay",
    "complaint": "compl",
    "recommendation": "recom",
    "human_agent": "human",
    "greeting": "greet",
    "other": "other",
    "negative": "neg",
    "neutral": "neu",
    "positive": "pos",
}
LANGS: tuple[Lang, ...] = ("en", "zh")


@dataclass(frozen=True)
class SentimentRow:
    text: str
    label: str
    anger: bool
    lang: Lang
    split: str


def load_sentiment_rows(path: Path) -> list[SentimentRow]:
    """Reads {text, label, anger, lang, split} rows; a bad row names file:line."""
    rows: list[SentimentRow] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            row = SentimentRow(
                str(raw["text"]), raw["label"], raw["anger"], raw["lang"], raw["split"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc!r}") from exc
        if row.label not in ("negative", "neutral", "positive") or row.lang not in LANGS:
            raise ValueError(f"{path}:{number}: bad label or lang")
        if not isinstance(row.anger, bool) or row.split not in ("train", "test"):
            raise ValueError(f"{path}:{number}: 'anger' must be a bool, 'split' train|test")
        rows.append(row)
    return rows


def load_bitext(path: Path) -> list[tuple[str, Intent]]:
    """The Bitext rows of a golden file as (question, our intent); unmapped intents fail."""
    out: list[tuple[str, Intent]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("dataset") != BITEXT_DATASET:
            continue
        intent = row["origin"]["intent"]
        if intent not in BITEXT_TO_INTENT:
            raise ValueError(f"{path}: Bitext intent {intent!r} has no mapping in BITEXT_TO_INTENT")
        out.append((row["question"], BITEXT_TO_INTENT[intent]))
    return out


def classification(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels present in gold, and a gold-by-predicted count matrix."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        matrix[index[g]][index[p]] += 1
    f1s = []
    for i in range(len(labels)):
        tp, support, predicted = matrix[i][i], sum(matrix[i]), sum(row[i] for row in matrix)
        if support:  # F1 = 2 tp / (gold + predicted)
            f1s.append(2 * tp / (support + predicted))
    n = len(gold)
    return {
        "n": n,
        "accuracy": sum(matrix[i][i] for i in range(len(labels))) / n if n else None,
        "macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "labels": list(labels),
        "confusion": matrix,
    }


def _intent_runs(
    clf: IntentClassifier, embedder: Embedder, items: Sequence[tuple[str, Intent]]
) -> dict[str, Any]:
    """Both variants on the same vectors: the model alone, and model + keyword rule."""
    vectors = [embedder.embed_query(text) for text, _ in items]
    gold = [label for _, label in items]
    out: dict[str, Any] = {}
    for name, override in (("model", False), ("model+keyword", True)):
        variant = clf.with_keyword_override(override)
        pred = [variant.predict(t, v).label for (t, _), v in zip(items, vectors, strict=True)]
        result = classification(gold, pred, INTENTS)
        if override:  # what the rule changed: how often it fired, and how often rightly
            fired = [g for (t, g) in items if explicit_human_request(t)]
            result["rule_fired"] = len(fired)
            result["rule_right"] = fired.count("human_agent")
        result["errors"] = [
            {"text": t, "gold": g, "pred": p}
            for (t, g), p in zip(items, pred, strict=True)
            if g != p
        ]
        out[name] = result
    return out


def evaluate_sentiment(rows: Sequence[SentimentRow]) -> dict[str, Any]:
    """3-way accuracy and anger precision/recall on the test rows, per language."""
    out: dict[str, Any] = {}
    for lang in LANGS:
        test = [r for r in rows if r.lang == lang and r.split == "test"]
        results = [analyse_sentiment(r.text, r.lang) for r in test]
        result = classification(
            [r.label for r in test], [s.label for s in results], ("negative", "neutral", "positive")
        )
        tp = sum(r.anger and s.anger for r, s in zip(test, results, strict=True))
        flagged = sum(s.anger for s in results)
        angry = sum(r.anger for r in test)
        result["anger_precision"] = tp / flagged if flagged else None
        result["anger_recall"] = tp / angry if angry else None
        result["anger_support"] = angry
        result["errors"] = [
            {"text": r.text, "gold": r.label, "pred": s.label, "anger": [r.anger, s.anger]}
            for r, s in zip(test, results, strict=True)
            if r.label != s.label or r.anger != s.anger
        ]
        out[lang] = result
    return out


def run(embedder: Embedder, examples: Path, sentiment: Path, bitext: Path | None) -> dict[str, Any]:
    """The whole measurement as one JSON-able dict; `embedder` may be a fake in tests."""
    rows = load_examples(examples)
    train = [r for r in rows if r.split == "train"]
    clf = IntentClassifier.train(embedder, train)
    report: dict[str, Any] = {
        "meta": {
            "examples": str(examples),
            "train_rows": len(train),
            "test_rows": len(rows) - len(train),
        },
        "intent": {
            lang: _intent_runs(
                clf,
                embedder,
                [(r.text, r.intent) for r in rows if r.lang == lang and r.split == "test"],
            )
            for lang in LANGS
        },
    }
    if bitext is not None and bitext.exists():
        report["bitext"] = _intent_runs(clf, embedder, load_bitext(bitext))
    else:
        report["bitext"] = {"skipped": f"no golden file at {bitext}"}
    report["sentiment"] = evaluate_sentiment(load_sentiment_rows(sentiment))
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _matrix(result: dict[str, Any]) -> list[str]:
    labels = [_SHORT[label] for label in result["labels"]]
    lines = ["| gold \\ pred | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, result["confusion"], strict=True):
        if any(row):
            lines.append(f"| {label} | " + " | ".join(str(c) if c else "." for c in row) + " |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# Dialogue analysis: intent and sentiment",
        "",
        f"- examples: {meta['examples']} ({meta['train_rows']} train, {meta['test_rows']} test)",
        f"- embedder: {meta.get('embedder', '-')}; took {meta.get('seconds', 0):.0f} s",
        "",
        "## Intent (held-out test split; Bitext = external English check)",
        "",
        "| set | variant | n | accuracy | macro-F1 | rule fired (rightly) |",
        "|---|---|---|---|---|---|",
    ]
    sets = {
        **{f"test {lang}": report["intent"][lang] for lang in LANGS},
        "bitext en": report["bitext"],
    }
    for name, variants in sets.items():
        for variant, r in variants.items():
            if variant != "skipped":
                scores = f"{_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])}"
                rule = f"{r['rule_fired']} ({r['rule_right']})" if "rule_fired" in r else "-"
                lines.append(f"| {name} | {variant} | {r['n']} | {scores} | {rule} |")
    if "skipped" in report["bitext"]:
        lines += ["", f"Bitext check skipped: {report['bitext']['skipped']}"]
    for name, variants in sets.items():
        for variant, r in variants.items():
            if variant != "skipped":
                lines += ["", f"### Confusion: {name}, {variant}", "", *_matrix(r)]
    lines += [
        "",
        "## Sentiment (test split)",
        "",
        "| lang | n | accuracy | macro-F1 | anger P | anger R | angry rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang, r in report["sentiment"].items():
        lines.append(
            f"| {lang} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |"
            f" {_fmt(r['anger_precision'])} | {_fmt(r['anger_recall'])} | {r['anger_support']} |"
        )
    for lang, r in report["sentiment"].items():
        lines += ["", f"### Confusion: sentiment {lang}", "", *_matrix(r)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.dialogue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--examples", type=Path, default=Path("data/dialogue/intents.jsonl"))
    parser.add_argument("--sentiment", type=Path, default=Path("data/dialogue/sentiment.jsonl"))
    parser.add_argument(
        "--bitext", type=Path, default=Path("../shared/data/golden/golden_dev.jsonl")
    )
    parser.add_argument("--out", type=Path, default=Path("var/eval-runs/dialogue"))
    args = parser.parse_args(argv)

    from app.config import Settings
    from app.container import build_embedder

    started = time.monotonic()
    settings = Settings()
    embedder = build_embedder(settings)
    report = run(embedder, args.examples, args.sentiment, args.bitext)
    cfg = settings.embedding
    report["meta"]["embedder"] = f"{cfg.backend}:{cfg.model_path or cfg.model}"
    report["meta"]["seconds"] = time.monotonic() - started
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    (args.out / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
