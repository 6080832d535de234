"""The eval harness's own arithmetic and plumbing, with the deterministic fakes."""

import json
from pathlib import Path

import pytest

from app.config import Settings
from app.embeddings import HashEmbedder
from eval import cli, compare, fit, report, split, summary, thresholds
from eval.golden import GoldenError, GoldenRow, load_golden
from eval.grounding import GroundingJudge, negated, numbers
from eval.metrics import answer_tokens, exact_match, percentile, token_f1
from eval.runner import RunConfig, run, with_overrides

pytestmark = pytest.mark.unit
SHOP = Path(__file__).resolve().parents[1] / "data" / "shop"
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "data" / "sample_shop" / "golden"


def test_chinese_answers_are_scored_by_character_and_markers_ignored() -> None:
    assert answer_tokens("运费30元[1]。") == ["运", "费", "30", "元"]
    assert token_f1("港澳台运费30元 [2]", ["运费30元"]) == pytest.approx(8 / 11)  # P 4/7, R 1
    assert token_f1("nothing alike", ["运费30元"]) == 0.0
    assert exact_match("The 30-day window.", ["30 day window"]) == 1.0
    assert token_f1("refund", ["exchange", "refund"]) == 1.0  # best of all_answers


def test_percentile_interpolates_and_handles_empty() -> None:
    assert percentile([], 50) is None
    assert percentile([10.0], 95) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_a_bad_golden_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"id": "a", "question": "q", "language": "en"}\n{"id": "b", "language": "fr"}\n'
    )
    with pytest.raises(GoldenError, match=r"g\.jsonl:2"):
        load_golden(path)


def test_grounding_judge_needs_meaning_numbers_and_polarity() -> None:
    assert numbers("保修两年，运费30元") == {"2", "30"}
    assert negated("We do not offer cash on delivery.")
    assert not negated("We offer it.")
    assert negated("我们不提供货到付款")
    assert not negated("不满99元收取10元运费")
    judge = GroundingJudge(HashEmbedder(), threshold=0.5)
    passage = ["Returns are accepted within 30 days of delivery."]
    same, wrong_number, negated_claim = judge.judge(
        [
            "Returns are accepted within 30 days of delivery.",
            "Returns are accepted within 14 days of delivery.",
            "Returns are not accepted within 30 days of delivery.",
        ],
        passage,
    )
    assert same.supported
    assert not wrong_number.supported
    assert not wrong_number.numbers_ok
    assert not negated_claim.supported
    assert not negated_claim.polarity_ok
    assert judge.grounded_share("Returns are accepted within 30 days of delivery [1].", []) == 0.0


def _item(**kw: object) -> dict[str, object]:
    base = {"system": "hybrid", "part": "p", "lang": "en", "answerable": True, "id": "x"}
    return {**base, **kw}


def test_summary_counts_failures_and_keeps_rates_apart() -> None:
    items = [
        _item(
            id="a",
            outcome="generated",
            refused=False,
            timings_ms={"total_ms": 100.0},
            **{"recall@5": 1.0},
        ),
        _item(
            id="b",
            outcome="refused",
            refused=True,
            timings_ms={"total_ms": 300.0},
            **{"recall@5": 0.0},
        ),
        _item(
            id="c", answerable=False, outcome="refused", refused=True, timings_ms={"total_ms": 5.0}
        ),
        _item(id="d", error="RuntimeError: boom"),
    ]
    s = summary.summarize(items)
    assert s["n"] == 4
    assert s["failed"] == 1
    assert s["failed_ids"] == ["d"]
    assert s["recall@5"] == 0.5
    assert s["false_refusal_rate"] == 0.5
    assert s["refusal_rate"] == 1.0
    assert s["latency_p50_ms"] == 100
    grouped = summary.group(items)
    assert set(grouped) == {"overall", "parts", "languages"}
    assert grouped["languages"]["en"]["n"] == 4


def test_thresholds_fail_on_a_drop_and_never_pass_vacuously() -> None:
    run_summary = {
        "overall": {"recall@5": 0.7, "token_f1": None},
        "languages": {"zh": {"recall@5": 0.9}},
    }
    limits = {
        "overall": {"recall@5": {"min": 0.8}},
        "languages": {"zh": {"recall@5": {"min": 0.85}}},
    }
    violations, checked = thresholds.check(run_summary, limits)
    assert checked == 2
    assert violations == ["overall/all recall@5 = 0.7 < 0.8"]
    violations, _ = thresholds.check(run_summary, {"overall": {"token_f1": {"min": 0.1}}})
    assert violations == ["overall/all token_f1: not measured by this run"]
    assert thresholds.check(run_summary, {"_about": "notes only"}) == (
        ["no limit in the thresholds file"],
        0,
    )
    violations, _ = thresholds.check(run_summary, {"overall": {"recall@5": {"at_least": 0.5}}})
    assert violations == ["overall/all recall@5: a limit needs min or max"]


def test_the_committed_gate_file_limits_correctness_and_failures() -> None:
    limits = json.loads((ROOT / "eval" / "thresholds" / "sample_shop.json").read_text())
    assert limits["overall"]["failed"] == {"max": 0}
    for metric in ("token_f1", "semantic_similarity", "citation_recall", "recall@5"):
        assert "min" in limits["overall"][metric], metric
    assert "test half" in limits["_about"]


def test_the_committed_split_is_what_eval_split_writes() -> None:
    expected = split.expected(GOLDEN)
    assert len(expected) == 6
    for source in split.SOURCES:
        full = [json.loads(line) for line in (GOLDEN / source).read_text().splitlines() if line]
        texts = {half: expected[split.half_path(GOLDEN / source, half)] for half in split.HALVES}
        halves = {h: [json.loads(line) for line in text.splitlines()] for h, text in texts.items()}
        ids = {half: {r["id"] for r in rows} for half, rows in halves.items()}
        assert not ids["dev"] & ids["test"], source
        assert ids["dev"] | ids["test"] == {r["id"] for r in full}, source
        for stratum in {split.stratum(r) for r in full}:  # each stratum halved, dev >= test
            n = {h: sum(split.stratum(r) == stratum for r in rows) for h, rows in halves.items()}
            assert 0 <= n["dev"] - n["test"] <= 1, (source, stratum, n)
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python -m eval.split"


def test_both_halves_of_a_split_file_report_as_one_part() -> None:
    row = GoldenRow(id="a", question="q", language="en")
    assert row.part("sample_golden.dev") == "sample_golden"
    assert row.part("sample_golden.test") == "sample_golden"
    assert row.part("dev_set") == "dev_set"
    assert GoldenRow(id="a", question="q", language="en", dataset="d").part("x.test") == "d"


def test_fitting_picks_the_widest_separating_threshold_within_the_false_refusal_target() -> None:
    keep, drop = [0.50, 0.42, 0.60], [0.20, 0.30, 0.45, 0.47]
    # 0.45 and 0.47 (drop) sit above 0.42 (keep): with no false refusal allowed the gate
    # stops midway between 0.30 and 0.42 (balanced accuracy (2/4 + 1) / 2 = 0.75); allowing
    # one in three it moves to midway between 0.47 and 0.50 ((1 + 2/3) / 2 = 0.83).
    assert fit.fit_threshold(keep, drop, 0.0) == 0.36
    assert fit.gate_stats(keep, drop, 0.36)["refusal_rate"] == 0.5
    assert fit.fit_threshold(keep, drop, 0.34) == 0.485
    assert fit.fit_threshold(keep, [], 0.0) is None
    faq = [
        [fit.FaqCandidate(0.70, True)],
        [fit.FaqCandidate(0.55, False), fit.FaqCandidate(0.65, True)],
        [fit.FaqCandidate(0.50, False)],
    ]
    # the highest wrong FAQ scores 0.55; the next score up is 0.65: threshold 0.6, and then
    # row 2's first candidate no longer qualifies, so its gold FAQ answers
    assert fit.fit_faq(faq) == 0.6
    assert fit.faq_stats(faq, 0.6) | {"threshold": 0} == {
        "threshold": 0, "n": 3, "answered_verbatim": 2, "right": 2, "wrong": 0, "precision": 1.0
    }  # fmt: skip
    needed = [fit.needed_margin([0.9, 0.8, 0.7], [False, False, True]), None, 0.0]
    assert needed[0] == pytest.approx(0.2)
    assert fit.fit_margin(needed) == 0.2
    assert fit.fit_margin([0.031]) == 0.04
    assert fit.margin_stats(needed, [3, 1, 2], 0.1)["gold_kept"] == 1


def test_overrides_are_validated_dotted_settings() -> None:
    s = with_overrides(Settings(), {"retrieval.mode": "bm25", "retrieval.min_dense_score": 0.0})
    assert s.retrieval.mode == "bm25"
    assert s.retrieval.min_dense_score == 0.0
    with pytest.raises(ValueError, match="unknown setting"):
        with_overrides(Settings(), {"retrieval.nope": 1})
    assert cli._systems(["w3:retrieval.bm25_weight=0.3,retrieval.fusion=rrf"]) == {
        "w3": {"retrieval.bm25_weight": 0.3, "retrieval.fusion": "rrf"}
    }


def _fake_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        llm={"backend": "fake"},  # type: ignore[arg-type]
        embedding={"backend": "fake"},  # type: ignore[arg-type]
        store={"backend": "memory"},  # type: ignore[arg-type]
        retrieval={"min_dense_score": 0.05},  # type: ignore[arg-type]
    )


def test_a_run_with_fakes_writes_summary_report_plots_and_compares(tmp_path: Path) -> None:
    golden = tmp_path / "shop_golden.jsonl"
    golden.write_text(
        json.dumps(
            {
                "id": "g1",
                "question": "How long is the return window?",
                "reference_answer": "30 days",
                "source_doc_ids": ["policy-returns-en"],
                "language": "en",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "g2",
                "question": "退货期限是多少天？",
                "reference_answer": "30天",
                "source_doc_ids": ["policy-returns-zh"],
                "language": "zh",
                "dataset": "zh-part",
            }
        )
        + "\n"
    )
    config = RunConfig(golden=[(golden, load_golden(golden))], out=tmp_path / "run", kb=[SHOP])
    result = run(config, _fake_settings(tmp_path))
    assert set(result["systems"]) == {"hybrid", "dense", "bm25", "hybrid-no-gate"}
    assert set(result["parts"]) == {"shop_golden", "zh-part"}  # a row without dataset: file name
    assert result["overall"]["n"] == 2
    assert result["overall"]["failed"] == 0
    assert result["meta"]["ingest"]["documents"] > 0
    for key in (
        "recall@5",
        "mrr@10",
        "ndcg@10",
        "citation_precision",
        "citation_recall",
        "token_f1",
        "semantic_similarity",
        "grounded_share",
        "refusal_rate",
        "false_refusal_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "failed",
    ):
        assert key in result["overall"]
    path = report.write(tmp_path / "run")
    text = path.read_text()
    assert "| lang: zh |" in text
    assert "hybrid-no-gate" in text
    assert (tmp_path / "run" / "per_part.png").stat().st_size > 1000
    out = compare.compare(tmp_path / "run", tmp_path / "run")
    assert "Items whose outcome changed (0)" in out


def test_cli_rejects_unknown_baselines_and_missing_kb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = tmp_path / "g.jsonl"
    golden.write_text('{"id": "a", "question": "q", "language": "en"}\n')
    assert cli.main([str(golden), "--out", str(tmp_path / "r"), "--baselines", "magic"]) == 1
    assert "unknown baseline" in capsys.readouterr().err
    assert (
        cli.main([str(golden), "--out", str(tmp_path / "r"), "--kb", str(tmp_path / "nope")]) == 1
    )


def test_questions_from_another_knowledge_base_become_unanswerable(tmp_path: Path) -> None:
    from eval.golden import foreign

    path = tmp_path / "other.jsonl"
    path.write_text(
        '{"id": "a", "question": "q", "language": "zh", "source_doc_ids": ["d"], '
        '"dataset": "law"}\n'
    )
    (row,) = foreign(load_golden(path))
    assert not row.answerable
    assert row.source_doc_ids == []
    assert row.part("x") == "foreign: law"
    assert row.language == "zh"


def test_limits_move_to_one_item_under_a_measured_run() -> None:
    items = [
        {"system": "hybrid", "id": str(n), "part": "p", "lang": "en", "answerable": True,
         "outcome": "generated", "refused": False, "token_f1": 0.5, "timings_ms": {}}
        for n in range(19)
    ]  # fmt: skip
    items.append({**items[0], "id": "r", "outcome": "refused", "refused": True, "token_f1": 0.0})
    run = {"primary": "hybrid", **summary.group(items)}
    assert run["overall"]["token_f1"] == 0.475  # 19 * 0.5 / 20
    limits = {
        "_about": "x",
        "overall": {"token_f1": {"min": 0.1}, "false_refusal_rate": {"max": 0.5}},
        "languages": {"en": {"failed": {"max": 0}}},
    }
    moved, figures = thresholds.remeasure(run, items, limits)
    # one item of 20 is 0.05: 0.475 - 0.05 = 0.425 → 0.42; 0.05 + 0.05 = 0.1
    assert moved["overall"] == {"token_f1": {"min": 0.42}, "false_refusal_rate": {"max": 0.1}}
    assert moved["languages"] == {"en": {"failed": {"max": 0}}}  # not a mean: kept
    assert moved["_about"] == "x"
    assert figures[0] == "overall/all token_f1 = 0.475 (n 20)"
