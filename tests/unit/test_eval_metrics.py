"""The eval metrics against hand-computed values: retrieval, citations, answers, refusals, gate.

Every expected number is worked out by hand in the comment beside it, so a
change to a metric's definition shows up here rather than as a quiet shift in
the gate's figures.
"""

import math
from typing import Any

import pytest

from app.embeddings import HashEmbedder
from eval import summary, thresholds
from eval.golden import GoldenRow
from eval.grounding import GroundingJudge
from eval.metrics import (
    citation_precision,
    citation_recall,
    mrr_at,
    ndcg_at,
    recall_at,
    token_f1,
)
from eval.scoring import answer_metrics

pytestmark = pytest.mark.unit
RANKED = ["a", "g1", "b", "g2", "c"]


# --- retrieval ------------------------------------------------------------------------


def test_recall_at_k_counts_distinct_gold_documents_in_the_first_k() -> None:
    assert recall_at(RANKED, ["g1", "g2"], 1) == 0.0  # "a" only
    assert recall_at(RANKED, ["g1", "g2"], 2) == 0.5  # g1 of {g1, g2}
    assert recall_at(RANKED, ["g1", "g2"], 5) == 1.0
    assert recall_at(RANKED, ["g1", "g1"], 2) == 1.0  # a gold id listed twice counts once
    assert recall_at(RANKED, ["zz"], 10) == 0.0
    assert recall_at(RANKED, [], 10) == 0.0  # no gold: nothing to find, not a free 1.0


def test_mrr_is_one_over_the_rank_of_the_first_gold_document() -> None:
    assert mrr_at(RANKED, ["g1", "g2"], 10) == 0.5  # g1 at rank 2
    assert mrr_at(RANKED, ["g2"], 10) == 0.25  # rank 4
    assert mrr_at(RANKED, ["g2"], 3) == 0.0  # outside the cut-off
    assert mrr_at(RANKED, ["a"], 10) == 1.0


def test_ndcg_discounts_gold_hits_by_log2_of_rank_plus_one() -> None:
    # g1 at rank 2, g2 at rank 4: DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161;
    # ideal (both first) = 1 + 1/log2(3) = 1.63093; nDCG = 0.65092
    assert ndcg_at(RANKED, ["g1", "g2"], 10) == pytest.approx(0.65092, abs=1e-5)
    assert ndcg_at(["g1", "g2", "a"], ["g1", "g2"], 10) == 1.0
    # one gold at rank 2 of a single-gold row: (1/log2(3)) / 1 = 0.63093
    assert ndcg_at(RANKED, ["g1"], 10) == pytest.approx(1 / math.log2(3))
    # three gold documents but k = 1: the ideal holds one, so a gold first scores 1
    assert ndcg_at(["g1"], ["g1", "g2", "g3"], 1) == 1.0
    assert ndcg_at(RANKED, ["zz"], 10) == 0.0


# --- citations ------------------------------------------------------------------------


def test_citation_precision_counts_gold_and_partial_gold_among_distinct_citations() -> None:
    assert citation_precision(["g1", "x"], ["g1", "g2"]) == 0.5  # 1 of {g1, x}
    assert citation_precision(["g1", "g1", "x"], ["g1"]) == 0.5  # duplicates count once
    assert citation_precision(["g1", "p"], ["g1"], partial=["p"]) == 1.0
    assert citation_precision([], ["g1"]) == 0.0  # an uncited answer has no right citation


def test_citation_recall_is_the_share_of_gold_documents_cited() -> None:
    assert citation_recall(["g1", "x"], ["g1", "g2"]) == 0.5  # g1 of {g1, g2}
    assert citation_recall(["g2", "g1", "x"], ["g1", "g2"]) == 1.0
    assert citation_recall(["p"], ["g1"]) == 0.0  # partial gold is not gold for recall
    assert citation_recall([], ["g1", "g2"]) == 0.0
    assert citation_recall(["g1"], []) == 0.0


# --- answers --------------------------------------------------------------------------


def test_token_f1_in_english_drops_articles_and_punctuation() -> None:
    # pred [return, window, is, 30, days]; ref [returns, are, accepted, within, 30, days]
    # common {30, days} = 2: P 2/5, R 2/6, F1 = 2PR/(P+R) = 4/11
    pred, ref = "The return window is 30 days.", "Returns are accepted within 30 days."
    assert token_f1(pred, [ref]) == pytest.approx(4 / 11)
    assert token_f1("A refund.", ["the REFUND"]) == 1.0
    assert token_f1("", [ref]) == 0.0


def test_token_f1_in_chinese_scores_characters() -> None:
    # pred 保 修 期 为 两 年 (6), ref 保 修 两 年 (4), common 4: P 4/6, R 1, F1 = 0.8
    assert token_f1("保修期为两年。", ["保修两年"]) == pytest.approx(0.8)
    # 免 运 费 vs 包 邮: nothing shared
    assert token_f1("免运费", ["包邮"]) == 0.0
    # mixed: pred [满, 99, 元, 包, 邮], ref [99, 元, 包, 邮], common 4: P 4/5, R 1 → 8/9
    assert token_f1("满99元包邮[1]", ["99元包邮"]) == pytest.approx(8 / 9)


# --- refusals and failures -------------------------------------------------------------

REFUSAL = "Sorry, I don't know."


def _row(answerable: bool, **kw: Any) -> GoldenRow:
    gold = {"source_doc_ids": ["g1", "g2"], "reference_answer": "30 days"} if answerable else {}
    return GoldenRow(
        id=kw.pop("id", "r"), question="q", language="en", answerable=answerable, **gold, **kw
    )


def _reply(outcome: str, cited: list[str], answer: str = "30 days [1]") -> dict[str, Any]:
    return {
        "outcome": outcome,
        "answer": REFUSAL if outcome == "refused" else answer,
        "citations": [{"doc_id": d} for d in cited],
        "timings_ms": {"total_ms": 10.0},
    }


def _score(row: GoldenRow, reply: dict[str, Any]) -> dict[str, Any]:
    embedder = HashEmbedder()
    item = answer_metrics(
        row, reply, GroundingJudge(embedder), embedder, lambda doc: [f"{doc}: 30 days"]
    )
    return {"id": row.id, "part": "p", "lang": "en", "answerable": row.answerable, **item}


def test_an_answerable_row_refused_is_a_false_refusal_without_citation_scores() -> None:
    item = _score(_row(True), _reply("refused", []))
    assert item["refused"] is True
    assert "citation_precision" not in item  # nothing answered, nothing to grade
    assert "citation_recall" not in item
    assert item["token_f1"] == 0.0  # the refusal's own text against "30 days"
    s = summary.summarize([item, _score(_row(True, id="ok"), _reply("generated", ["g1"]))])
    assert s["false_refusal_rate"] == 0.5  # 1 of 2 answerable rows refused
    assert s["refusal_rate"] is None  # no unanswerable row: not a made-up number


@pytest.mark.parametrize(
    ("outcome", "expected", "refused"),
    [
        ("handoff", None, True),  # the shopper asked a question and got a ticket
        ("greeting", None, True),
        ("tool", None, True),  # the catalogue took a policy question
        ("queued", None, True),
        ("tool", ["tool"], False),  # a shopping question the row expects the tool to take
        ("faq", None, False),
        ("generated", None, False),
    ],
)
def test_on_an_answerable_row_an_unexpected_non_answer_is_a_false_refusal(
    outcome: str, expected: list[str] | None, refused: bool
) -> None:
    item = _score(_row(True, expected_outcomes=expected), _reply(outcome, ["g1"]))
    assert item["refused"] is refused


@pytest.mark.parametrize(
    ("outcome", "refused"),
    [("refused", True), ("handoff", True), ("queued", True), ("tool", False), ("faq", False)],
)
def test_on_an_unanswerable_row_a_hand_off_is_a_right_non_answer(
    outcome: str, refused: bool
) -> None:
    assert _score(_row(False), _reply(outcome, []))["refused"] is refused


def test_an_unanswerable_row_refused_is_a_correct_refusal() -> None:
    refused = _score(_row(False, id="u1"), _reply("refused", []))
    answered = _score(_row(False, id="u2"), _reply("generated", ["x"]))
    assert "token_f1" not in refused  # no reference answer to score against
    assert "citation_precision" not in answered  # no gold documents to grade against
    s = summary.summarize([refused, answered])
    assert s["refusal_rate"] == 0.5  # u1 refused, u2 answered
    assert s["false_refusal_rate"] is None


def test_an_answered_row_scores_its_citations_and_no_citation_scores_zero() -> None:
    cited = _score(_row(True), _reply("generated", ["g1", "x"]))
    assert cited["citation_precision"] == 0.5  # g1 of {g1, x}
    assert cited["citation_recall"] == 0.5  # g1 of {g1, g2}
    assert cited["token_f1"] == 1.0  # "30 days" once the marker is dropped
    uncited = _score(_row(True), _reply("generated", []))
    assert (uncited["citation_precision"], uncited["citation_recall"]) == (0.0, 0.0)
    faq = _score(_row(True), _reply("faq", ["g2"]))
    assert (faq["citation_precision"], faq["citation_recall"]) == (1.0, 0.5)


def test_failed_items_are_counted_overall_per_part_and_per_language() -> None:
    ok = _score(_row(True, id="a"), _reply("generated", ["g1"]))
    items = [
        ok,
        {**ok, "id": "b", "lang": "zh", "part": "q", "error": "RuntimeError: boom"},
        {"id": "c", "part": "p", "lang": "en", "answerable": False, "error": "TimeoutError: "},
    ]
    grouped = summary.group(items)
    assert grouped["overall"]["failed"] == 2
    assert grouped["overall"]["failed_ids"] == ["b", "c"]
    assert {k: v["failed"] for k, v in grouped["parts"].items()} == {"p": 1, "q": 1}
    assert {k: v["failed"] for k, v in grouped["languages"].items()} == {"en": 1, "zh": 1}
    assert grouped["parts"]["q"]["citation_recall"] is None  # a failed row is not averaged
    assert grouped["overall"]["citation_recall"] == 0.5  # only "a"


# --- the gate ---------------------------------------------------------------------------


def test_a_gated_metric_missing_from_the_run_is_a_violation_never_a_skip() -> None:
    run = {"overall": {"recall@5": 0.9, "token_f1": None, "failed": 0}, "languages": {}}
    limits = {
        "overall": {
            "recall@5": {"min": 0.8},
            "token_f1": {"min": 0.3},  # null: a retrieval-only run
            "citation_recall": {"min": 0.5},  # absent altogether
            "failed": {"max": 0},
        },
        "languages": {"zh": {"recall@5": {"min": 0.8}}},
    }
    violations, checked = thresholds.check(run, limits)
    assert checked == 4
    assert violations == [
        "overall/all token_f1: not measured by this run",
        "overall/all citation_recall: not measured by this run",
        "languages/zh: missing from the run",
    ]


def test_the_gate_allows_no_failed_item() -> None:
    limits = {"overall": {"failed": {"max": 0}}}
    assert thresholds.check({"overall": {"failed": 0}}, limits) == ([], 1)
    violations, _ = thresholds.check({"overall": {"failed": 1}}, limits)
    assert violations == ["overall/all failed = 1 > 0"]
