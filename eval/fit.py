"""The tuned retrieval-side settings, fitted on the dev half and reported on the test half.

    python -m eval.fit [--out var/eval-runs/fit] [--kb data/sample_shop/kb]
        [--data-dir var/eval/sample] [--max-gate-false-refusal 0.0] [--gate-cushion 0.02]
        [--reuse]

No chat model runs: each setting is a threshold on a retrieval score, so the
golden questions are retrieved once (the same retriever and settings as the
endpoint) and every threshold is chosen from those scores, on the dev half
only (`eval/split.py`). The chosen value is printed beside the current default
with the same statistics on the test half, which nothing here was fitted on, and
whether the fitted value does better, the same or worse there: a value that does
worse on test did not generalise from the dev half and should not be adopted
without more data (say so where the setting is documented).

- `retrieval.min_dense_score` (the evidence gate): best dense cosine of the
  answerable vs the unanswerable dev questions; the threshold with the best
  balanced accuracy among those that refuse at most `--max-gate-false-refusal`
  of the answerable dev questions (default 0) and stay `--gate-cushion` (0.02)
  under them, placed midway between neighbouring scores. Why so careful: a
  question the gate refuses never reaches the model, while an unanswerable one
  that gets past it still meets the model's own refusal and the citation
  check; and the lowest of 20 answerable scores overestimates the next one's.
- `retrieval.faq_direct_score` (verbatim FAQ answers): above every FAQ in the
  top passages of a dev question (answerable or not, past the gate) that is not
  its gold document, midway to the next gold FAQ score above it. Its dev rows
  are the dev half plus `FAQ_PROBES` (dev only, written for this fit).
- `answer.pack_margin`: on dev rows that reach the model (past the gate, no
  FAQ answer) and retrieve a gold passage, the smallest margin (a 0.01 step)
  under the best fused score that keeps the best-ranked gold passage packed.
  Dev rows: the dev half plus `FAQ_PROBES`.
  The token budget (`answer.context_tokens`) is not modelled: it needs the
  chat model's tokenizer.
- `dialogue.follow_up_max_score`: only messages with a weak follow-up cue
  (short, no opener or pronoun) are probed; dev follow-ups of that kind should
  score below it, dev changes of topic above. Fitted like the gate when the dev
  half has both kinds, else left as it is (the report says so).
- `dialogue.repeat_similarity`: no golden file labels repeated questions, so
  it cannot be fitted; the report gives the highest cosine between *different*
  dev questions (which it must stay above) and how many pairs it would flag.

Writes OUT/fit.json, OUT/report.md and OUT/probes.json (every score it was fitted
from; `--reuse` refits from it without the embedding model).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from app.config import Settings
from app.container import Container, build_container
from app.domain import Lang
from app.rag.rewrite import follow_up_cue
from app.rag.untrusted import addresses_assistant
from app.text import detect_lang
from eval.golden import GoldenRow, load_golden
from eval.runner import git_commit, scope_filters, with_overrides
from eval.split import half_path
from ingest.pipeline import ingest

GOLDEN_DIR = Path("data/sample_shop/golden")
ANSWERABLE = GOLDEN_DIR / "sample_golden.jsonl"
UNANSWERABLE = GOLDEN_DIR / "sample_unanswerable.jsonl"
FOLLOWUPS = GOLDEN_DIR / "sample_followups.jsonl"
FAQ_PROBES = GOLDEN_DIR / "sample_faq_probes.dev.jsonl"
"""Dev-only questions written for the FAQ fast path: near misses (an FAQ is close, a
policy holds the answer, or nothing does) and paraphrases of FAQ questions. The dev half
of the golden set has too few near misses to place the FAQ threshold on its own."""


# --- fitting (pure) -------------------------------------------------------------


def candidates(scores: Sequence[float]) -> list[float]:
    """Thresholds worth trying: midway between neighbouring distinct scores, and just
    outside both ends (a threshold `t` splits the scores into `< t` and `>= t`)."""
    values = sorted(set(scores))
    if not values:
        return []
    mids = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    return [values[0] - 0.01, *mids, values[-1] + 0.01]


def gate_stats(keep: Sequence[float], drop: Sequence[float], t: float) -> dict[str, Any]:
    """A threshold that drops scores below `t`: how often it drops rows it should keep
    (`false_refusal_rate`) and drops rows it should drop (`refusal_rate`)."""
    frr = sum(s < t for s in keep) / len(keep) if keep else None
    rr = sum(s < t for s in drop) / len(drop) if drop else None
    bacc = None if frr is None or rr is None else (rr + 1 - frr) / 2
    return {
        "threshold": round(t, 4),
        "n_keep": len(keep),
        "n_drop": len(drop),
        "false_refusal_rate": _r(frr),
        "refusal_rate": _r(rr),
        "balanced_accuracy": _r(bacc),
    }


def fit_threshold(
    keep: Sequence[float],
    drop: Sequence[float],
    max_false_refusal: float = 0.0,
    cushion: float = 0.0,
) -> float | None:
    """The threshold with the best balanced accuracy whose false-refusal rate on `keep` is
    at most `max_false_refusal`, counting a kept score less than `cushion` above the
    threshold as refused (room for the next question scoring a little lower than any so
    far). Placed midway between the neighbouring boundaries (scores to drop, scores to keep
    minus the cushion), so it sits as far from both as the data allow; ties go to fewer
    false refusals, then the lower threshold. None without scores of both kinds."""
    if not keep or not drop:
        return None
    shifted = [s - cushion for s in keep]
    best: tuple[float, float, float] | None = None
    for t in candidates([*shifted, *drop]):
        stats = gate_stats(shifted, drop, t)
        frr, bacc = stats["false_refusal_rate"], stats["balanced_accuracy"]
        if frr > max_false_refusal + 1e-9:
            continue
        key = (-bacc, frr, t)
        if best is None or key < best:
            best = key
    return None if best is None else round(best[2], 3)


@dataclass(frozen=True)
class FaqCandidate:
    """An FAQ passage the fast path may answer with: its question's cosine, and whether
    it is one of the row's gold documents."""

    score: float
    gold: bool


def faq_outcome(ranked: Sequence[FaqCandidate], t: float) -> str | None:
    """What the fast path does at threshold `t`: the first FAQ (rank order) at or above
    it answers verbatim, "right" when it is gold; None when no FAQ qualifies."""
    for cand in ranked:
        if cand.score >= t:
            return "right" if cand.gold else "wrong"
    return None


def faq_stats(rows: Sequence[Sequence[FaqCandidate]], t: float) -> dict[str, Any]:
    outcomes = [faq_outcome(r, t) for r in rows]
    answered = sum(o is not None for o in outcomes)
    right = outcomes.count("right")
    return {
        "threshold": round(t, 4),
        "n": len(rows),
        "answered_verbatim": answered,
        "right": right,
        "wrong": outcomes.count("wrong"),
        "precision": _r(right / answered if answered else None),
    }


def fit_faq(rows: Sequence[Sequence[FaqCandidate]]) -> float | None:
    """Above every FAQ that is not the row's gold document, wherever it ranks: midway
    between the highest such score and the next gold FAQ score above it (else 0.01 over
    it). Stricter than "no wrong FAQ answered first": a wrong FAQ that a right one
    outranked on dev is as likely to come first on the next question. None without
    any wrong FAQ to stay above."""
    wrong = [c.score for r in rows for c in r if not c.gold]
    if not wrong:
        return None
    top = max(wrong)
    above = [c.score for r in rows for c in r if c.gold and c.score > top]
    return round((top + min(above)) / 2 if above else top + 0.01, 3)


def needed_margin(scores: Sequence[float], gold: Sequence[bool]) -> float | None:
    """How far under the best fused score the best-ranked gold passage is (passages in
    rank order); None when no gold passage was retrieved."""
    for score, is_gold in zip(scores, gold, strict=True):
        if is_gold:
            return max(0.0, scores[0] - score)
    return None


def fit_margin(needed: Sequence[float | None], step: float = 0.01) -> float:
    """The smallest margin, a multiple of `step`, that keeps every reachable gold passage."""
    reachable = [n for n in needed if n is not None]
    worst = max(reachable, default=0.0)
    return round(math.ceil(round(worst / step, 6)) * step, 4)


def margin_stats(needed: Sequence[float | None], kept: Sequence[int], m: float) -> dict[str, Any]:
    """Gold passages kept at margin `m` (of the rows that retrieved one) and passages packed."""
    reachable = [n for n in needed if n is not None]
    return {
        "margin": m,
        "n": len(needed),
        "gold_retrieved": len(reachable),
        "gold_kept": sum(n <= m + 1e-9 for n in reachable),
        "gold_kept_rate": _r(sum(n <= m + 1e-9 for n in reachable) / len(reachable))
        if reachable
        else None,
        "mean_passages_kept": _r(sum(kept) / len(kept)) if kept else None,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- probing the retriever ----------------------------------------------------------


@dataclass
class Probe:
    """What the retriever gave one golden row, as the endpoint's answer step sees it."""

    row: GoldenRow
    best_dense: float | None
    faq: list[FaqCandidate] = field(default_factory=list)
    fused: list[float] = field(default_factory=list)
    gold: list[bool] = field(default_factory=list)


def probe_rows(container: Container, rows: Sequence[GoldenRow], keys: set[str]) -> list[Probe]:
    """Each row's retrieval with the endpoint's settings (top_k passages, its scope)."""
    out = []
    for row in rows:
        result = container.retriever.retrieve(row.question, scope_filters(row, keys))
        lang = detect_lang(row.question)
        gold_docs = set(row.source_doc_ids) if row.answerable else set()
        faq = [
            FaqCandidate(p.dense_score or 0.0, p.chunk.doc_id in gold_docs)
            for p in result.passages
            if p.chunk.kind == "faq"
            and p.chunk.metadata.get("answer")
            and p.chunk.metadata.get("lang") == lang
            and not addresses_assistant(str(p.chunk.metadata["answer"]))
        ]
        out.append(
            Probe(
                row=row,
                best_dense=result.best_dense,
                faq=faq,
                fused=[p.score for p in result.passages],
                gold=[p.chunk.doc_id in gold_docs for p in result.passages],
            )
        )
    return out


def _scores(probes: Sequence[Probe], answerable: bool) -> list[float]:
    return [
        p.best_dense for p in probes if p.row.answerable is answerable and p.best_dense is not None
    ]


def _past_gate(probes: Sequence[Probe], gate: float) -> list[Probe]:
    return [p for p in probes if p.best_dense is not None and p.best_dense >= gate]


def _to_model(probes: Sequence[Probe], gate: float, faq: float) -> list[Probe]:
    """Answerable rows that reach the chat model: past the gate, no verbatim FAQ."""
    return [
        p
        for p in _past_gate(probes, gate)
        if p.row.answerable and faq_outcome(p.faq, faq) is None and p.fused
    ]


def _margins(probes: Sequence[Probe], m: float) -> tuple[list[float | None], list[int]]:
    needed = [needed_margin(p.fused, p.gold) for p in probes]
    kept = [sum(s >= p.fused[0] - m for s in p.fused) for p in probes]
    return needed, kept


# --- the run --------------------------------------------------------------------------


@dataclass
class Fitted:
    """One setting: its current default, the value fitted on dev (None: not fitted), the
    rule, and the statistics of both values on each half."""

    setting: str
    current: float
    fitted: float | None
    rule: str
    dev: dict[str, Any]
    test: dict[str, Any]
    note: str = ""
    on_test: str = "-"
    """The fitted value against the current one on the test half: better, same or worse."""


Stats = Callable[[Any, float], dict[str, Any]]


def _fitted(
    setting: str,
    current: float,
    fitted: float | None,
    rule: str,
    stats: Stats,
    halves: tuple[Any, Any],
    note: str = "",
    merit: Callable[[dict[str, Any]], tuple[float, ...]] | None = None,
) -> Fitted:
    """`stats(half's data, threshold)` for the current and the fitted value on both halves,
    and how the fitted value does on the test half against the current one by `merit`
    (a tuple, larger is better): a value fitted on dev that is worse on test did not
    generalise, and the test half is the only place that shows it."""

    def both(data: Any) -> dict[str, Any]:
        return {
            "current": stats(data, current),
            "fitted": None if fitted is None else stats(data, fitted),
        }

    dev, test = both(halves[0]), both(halves[1])
    verdict = "-"
    if fitted is not None and merit is not None:
        new, old = merit(test["fitted"]), merit(test["current"])
        verdict = "better" if new > old else "worse" if new < old else "same"
    return Fitted(setting, current, fitted, rule, dev, test, note, verdict)


@dataclass
class Probed:
    """Everything fitting needs from the retriever, for the dev and the test half."""

    golden: tuple[list[Probe], list[Probe]]
    follow_ups: tuple[list[tuple[float, bool]], list[tuple[float, bool]]]
    """(probe score, is a follow-up) of the messages with a weak follow-up cue."""
    different: tuple[list[float], list[float]]
    """Cosines between pairs of different questions (the repeat detector's negatives)."""
    faq_probes: list[Probe] = field(default_factory=list)
    """`FAQ_PROBES`, dev only: more dev rows for the FAQ threshold and the pack margin."""


def fit_all(
    probed: Probed, settings: Settings, max_gate_false_refusal: float, gate_cushion: float
) -> list[Fitted]:
    """Every setting's fitted value and its statistics on both halves. Each is fitted with
    the others at their configured values (the FAQ path sees the rows the configured gate
    lets through; the pack margin the rows that reach the model)."""
    r, a, d = settings.retrieval, settings.answer, settings.dialogue
    dev, test = probed.golden

    def gate_of(probes: list[Probe], t: float) -> dict[str, Any]:
        return gate_stats(_scores(probes, True), _scores(probes, False), t)

    def by_accuracy(stats: dict[str, Any]) -> tuple[float, ...]:
        return (stats["balanced_accuracy"], -stats["false_refusal_rate"])

    gate = fit_threshold(
        _scores(dev, True), _scores(dev, False), max_gate_false_refusal, gate_cushion
    )
    out = [
        _fitted(
            "retrieval.min_dense_score",
            r.min_dense_score,
            gate,
            "best balanced accuracy (best dense cosine, answerable vs unanswerable) with gate "
            f"false refusals <= {max_gate_false_refusal}, counting answerable scores less than "
            f"{gate_cushion} above the threshold as refused; midway between neighbours",
            gate_of,
            (dev, test),
            merit=by_accuracy,
        )
    ]

    faq_dev = [*dev, *probed.faq_probes]  # the dev half and the written near misses
    faq_rows = tuple([p.faq for p in _past_gate(ps, r.min_dense_score)] for ps in (faq_dev, test))
    out.append(
        _fitted(
            "retrieval.faq_direct_score",
            r.faq_direct_score,
            fit_faq(faq_rows[0]),
            "above every FAQ in the top passages that is not the row's gold document, midway "
            "to the next gold FAQ score (rows past the configured gate)",
            faq_stats,
            (faq_rows[0], faq_rows[1]),
            merit=lambda st: (-st["wrong"], st["right"]),
        )
    )

    model_rows = tuple(
        _to_model(ps, r.min_dense_score, r.faq_direct_score) for ps in (faq_dev, test)
    )

    def margin_of(probes: list[Probe], m: float) -> dict[str, Any]:
        return margin_stats(*_margins(probes, m), m)

    out.append(
        _fitted(
            "answer.pack_margin",
            a.pack_margin,
            fit_margin(_margins(model_rows[0], 0.0)[0]),
            "smallest 0.01 step that keeps every retrieved gold passage (answerable rows that "
            "reach the model with the configured gate and FAQ thresholds)",
            margin_of,
            (model_rows[0], model_rows[1]),
            merit=lambda st: (st["gold_kept_rate"] or 0.0, -(st["mean_passages_kept"] or 0.0)),
        )
    )

    def follow_of(rows: list[tuple[float, bool]], t: float) -> dict[str, Any]:
        return gate_stats(*_keep_drop(rows), t)

    follow = fit_threshold(*_keep_drop(probed.follow_ups[0]), max_false_refusal=1.0)
    out.append(
        _fitted(
            "dialogue.follow_up_max_score",
            d.follow_up_max_score,
            follow,
            "best balanced accuracy on weak-cue messages: follow-ups must probe below it "
            "(refusal_rate = follow-ups rewritten), changes of topic above it "
            "(false_refusal_rate = topic changes rewritten); midway between neighbours",
            follow_of,
            probed.follow_ups,
            ""
            if follow is not None
            else "not fitted: the dev half lacks weak-cue follow-ups or weak-cue topic changes",
            merit=by_accuracy,
        )
    )
    out.append(
        _fitted(
            "dialogue.repeat_similarity",
            d.repeat_similarity,
            None,
            "not fitted: no golden file labels repeated questions; checked against pairs of "
            "different questions, which it must stay above",
            _repeat_stats,
            probed.different,
            "negatives only (follow-up vs its earlier question; same-language golden pairs)",
        )
    )
    return out


def _keep_drop(rows: Sequence[tuple[float, bool]]) -> tuple[list[float], list[float]]:
    """Topic changes (kept as they are) and follow-ups (to rewrite)."""
    return [s for s, f in rows if not f], [s for s, f in rows if f]


def _repeat_stats(cosines: Sequence[float], t: float) -> dict[str, Any]:
    return {
        "threshold": t,
        "pairs_of_different_questions": len(cosines),
        "max_cosine": _r(max(cosines, default=0.0)),
        "flagged_as_repeat": sum(c >= t for c in cosines),
    }


def _follow_ups(
    container: Container, path: Path
) -> tuple[list[tuple[float, bool]], dict[str, int]]:
    """(probe score, is a follow-up) of every weak-cue message, and the cues counted."""
    scored, cues = [], {"strong": 0, "weak": 0, "none": 0}
    for row in load_golden(path):
        lang = cast(Lang, row.language)
        cue = follow_up_cue(row.question, lang)
        cues[cue or "none"] += 1
        if cue == "weak":
            best = container.retriever.retrieve(row.question, k=1).best_dense
            scored.append((-1.0 if best is None else best, row.dataset == "follow-up"))
    return scored, cues


def _different(container: Container, golden: Sequence[GoldenRow], follow_path: Path) -> list[float]:
    """Cosines of pairs of different questions: each follow-up against its earlier
    questions, and every same-language pair of golden questions."""
    embed = container.embedder.embed_query
    pairs: list[tuple[str, str]] = []
    for row in load_golden(follow_path):
        pairs += [
            (str(earlier), row.question) for earlier in (row.model_extra or {}).get("history", [])
        ]
    pairs += [
        (a.question, b.question)
        for i, a in enumerate(golden)
        for b in golden[i + 1 :]
        if a.language == b.language and a.question != b.question
    ]
    return [float(np.dot(embed(x), embed(y))) for x, y in pairs]


def probe(container: Container) -> tuple[Probed, dict[str, Any]]:
    """Retrieve every dev and test question once; probe and embed the follow-up rows."""
    keys = {key for chunk in container.store.scan() for key in chunk.metadata}
    golden, follows, different, cues = [], [], [], {}
    for half in ("dev", "test"):
        rows = [
            *load_golden(half_path(ANSWERABLE, half)),
            *load_golden(half_path(UNANSWERABLE, half)),
        ]
        golden.append(probe_rows(container, rows, keys))
        scored, cues[half] = _follow_ups(container, half_path(FOLLOWUPS, half))
        follows.append(scored)
        different.append(_different(container, rows, half_path(FOLLOWUPS, half)))
    faq_probes = probe_rows(container, load_golden(FAQ_PROBES), keys)
    probed = Probed(
        (golden[0], golden[1]), (follows[0], follows[1]), (different[0], different[1]), faq_probes
    )
    return probed, {"follow_up_cues": cues}


def dump(probed: Probed) -> dict[str, Any]:
    """The probes as JSON: the evidence behind every fitted value (OUT/probes.json)."""

    def golden(probes: list[Probe]) -> list[dict[str, Any]]:
        return [
            {
                "row": p.row.model_dump(exclude_none=True),
                "best_dense": p.best_dense,
                "faq": [[c.score, c.gold] for c in p.faq],
                "fused": p.fused,
                "gold": p.gold,
            }
            for p in probes
        ]

    return {
        "golden": [golden(h) for h in probed.golden],
        "follow_ups": [list(map(list, h)) for h in probed.follow_ups],
        "different": list(probed.different),
        "faq_probes": golden(probed.faq_probes),
    }


def load(data: dict[str, Any]) -> Probed:
    """`dump`'s JSON back: refit with other rules without retrieving again (`--reuse`)."""

    def golden(rows: list[dict[str, Any]]) -> list[Probe]:
        return [
            Probe(
                GoldenRow.model_validate(r["row"]),
                r["best_dense"],
                [FaqCandidate(score, gold) for score, gold in r["faq"]],
                r["fused"],
                r["gold"],
            )
            for r in rows
        ]

    dev, test = (golden(h) for h in data["golden"])
    fdev, ftest = ([(float(s), bool(f)) for s, f in h] for h in data["follow_ups"])
    different = (data["different"][0], data["different"][1])
    return Probed((dev, test), (fdev, ftest), different, golden(data.get("faq_probes", [])))


def markdown(results: Sequence[Fitted], meta: dict[str, Any]) -> str:
    lines = [
        "# Tuned settings: fitted on the dev half, reported on the test half",
        "",
        f"- commit `{meta['commit']}`; dev = `*.dev.jsonl`, test = `*.test.jsonl` "
        f"({meta['golden_dir']}, eval/split.py)",
        f"- follow-up cues (strong / weak / none): dev {meta['follow_up_cues']['dev']}, "
        f"test {meta['follow_up_cues']['test']}",
        "",
        "| setting | current | fitted on dev | differs | fitted vs current on test |",
        "|---|---|---|---|---|",
    ]
    for f in results:
        differs = "-" if f.fitted is None else ("yes" if abs(f.fitted - f.current) > 1e-9 else "no")
        lines.append(
            f"| `{f.setting}` | {f.current} | {_fmt(f.fitted)} | {differs} | {f.on_test} |"
        )
    for f in results:
        lines += ["", f"## `{f.setting}`", "", f"rule: {f.rule}"]
        if f.note:
            lines.append(f"\nnote: {f.note}")
        lines += ["", "| half | value | statistics |", "|---|---|---|"]
        for half, stats in (("dev", f.dev), ("test", f.test)):
            for which in ("current", "fitted"):
                if stats[which] is not None:
                    cells = ", ".join(f"{k} {_fmt(v)}" for k, v in stats[which].items())
                    lines.append(f"| {half} | {which} | {cells} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


class _NoLLM:
    """Stands in for the chat model, which fitting never calls."""

    name = "none"
    context_window = 4096

    def count_tokens(self, text: str) -> int:
        return len(text)

    def stream(self, *_: Any, **__: Any) -> Iterator[str]:
        raise RuntimeError("fitting does not generate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--out", type=Path, default=Path("var/eval-runs/fit"))
    parser.add_argument("--kb", type=Path, default=Path("data/sample_shop/kb"))
    parser.add_argument("--data-dir", type=Path, default=Path("var/eval/sample"))
    parser.add_argument(
        "--max-gate-false-refusal",
        type=float,
        default=0.0,
        help="most answerable dev questions (a share) the evidence gate may refuse",
    )
    parser.add_argument(
        "--gate-cushion",
        type=float,
        default=0.02,
        help="how far under the lowest answerable dev cosine the evidence gate must stay",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="refit from OUT/probes.json of an earlier run instead of retrieving again",
    )
    args = parser.parse_args(argv)

    settings = with_overrides(Settings(), {"data_dir": str(args.data_dir)})
    probes_path = args.out / "probes.json"
    if args.reuse:
        saved = json.loads(probes_path.read_text())
        probed, meta = load(saved), saved["meta"]
    else:
        container = build_container(settings, llm=_NoLLM())
        ingest([args.kb], embedder=container.embedder, store=container.store,
               chunking=settings.chunking, bm25_path=settings.bm25_path)  # fmt: skip
        container.lexical.reload()
        probed, meta = probe(container)
        meta.update(commit=git_commit(), golden_dir=str(GOLDEN_DIR))
        args.out.mkdir(parents=True, exist_ok=True)
        probes_path.write_text(json.dumps({"meta": meta, **dump(probed)}, ensure_ascii=False))
    results = fit_all(probed, settings, args.max_gate_false_refusal, args.gate_cushion)
    (args.out / "fit.json").write_text(
        json.dumps({"meta": meta, "settings": [asdict(f) for f in results]}, indent=2)
    )
    report = markdown(results, meta)
    (args.out / "report.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
