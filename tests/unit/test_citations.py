import pytest

from app.domain import Chunk, RetrievedChunk
from app.rag.citations import check, is_refusal, split_sentences

pytestmark = pytest.mark.unit


def _passage(doc_id: str, text: str, title: str = "") -> RetrievedChunk:
    meta = {"title": title or doc_id, "source": f"{doc_id}.md", "doc_id": doc_id}
    return RetrievedChunk(chunk=Chunk(f"{doc_id}#0", doc_id, text, meta), score=1.0)


RETURNS = _passage("returns", "Items can be returned within 30 days of delivery for a refund.")
SHIPPING = _passage(
    "shipping", "Shipping is free on orders over 99 yuan; otherwise it costs 10 yuan."
)
ZH = _passage("returns-zh", "自收货之日起30天内可以申请退货，退款将原路返回。")


def test_valid_citation_is_kept_and_renumbered() -> None:
    out = check("Shipping is free over 99 yuan [2].", [RETURNS, SHIPPING], 0.3)
    assert out.text == "Shipping is free over 99 yuan [1]."
    assert [c.doc_id for c in out.citations] == ["shipping"]
    assert out.citations[0].n == 1


def test_out_of_range_citation_is_replaced_by_the_supporting_passage() -> None:
    out = check("You can return items within 30 days [7].", [RETURNS, SHIPPING], 0.3)
    assert [c.doc_id for c in out.citations] == ["returns"]
    assert "[7]" not in out.text


def test_wrong_citation_is_moved_to_the_passage_that_supports_it() -> None:
    out = check("Returns are accepted within 30 days of delivery [2].", [RETURNS, SHIPPING], 0.3)
    assert [c.doc_id for c in out.citations] == ["returns"]


def test_missing_citation_is_attached() -> None:
    out = check("Orders over 99 yuan ship free.", [RETURNS, SHIPPING], 0.3)
    assert [c.doc_id for c in out.citations] == ["shipping"]


def test_unsupported_sentence_is_dropped() -> None:
    out = check(
        "Returns are accepted within 30 days [1]. We also sell electric scooters in Paris.",
        [RETURNS, SHIPPING],
        0.3,
    )
    assert "scooters" not in out.text
    assert out.dropped_sentences == 1
    assert out.kept_sentences == 1


def test_chinese_answer_is_checked_with_word_segmentation() -> None:
    out = check("收货后30天内可以退货【1】。", [ZH], 0.3)
    assert [c.doc_id for c in out.citations] == ["returns-zh"]
    assert "30天" in out.citations[0].snippet


def test_nothing_supported_gives_no_citations() -> None:
    out = check("The capital of Peru is Lima.", [RETURNS, SHIPPING], 0.3)
    assert out.citations == []


def test_split_sentences_keeps_markers_with_their_sentence() -> None:
    assert split_sentences("One [1]. Two [2]! 三。四 [1]") == [
        "One [1].",
        "Two [2]!",
        "三。",
        "四 [1]",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("I don't know.", True), ("我不知道。", True), ("Returns take 30 days.", False)],
)
def test_refusal_detection(text: str, expected: bool) -> None:
    assert is_refusal(text) is expected


def test_common_words_do_not_lend_support() -> None:
    idf = {"lumen": 0.1, "leaf": 0.1, "returned": 2.0, "days": 2.0, "delivery": 2.0}
    shop = _passage("about", "Lumen Leaf items can be returned within 30 days of delivery.")
    out = check("Lumen Leaf was founded by Ada [1].", [shop], 0.3, lambda w: idf.get(w, 5.0))
    assert out.citations == []


def test_lead_in_phrase_is_removed_with_its_marker() -> None:
    out = check("Returns are accepted within 30 days, as stated in [1].", [RETURNS], 0.3)
    assert out.text == "Returns are accepted within 30 days [1]."


def test_echo_of_the_question_needs_the_passage_to_say_it() -> None:
    product = _passage("speaker", "实体按键设计，蓝牙音箱续航12小时。")
    out = check("是的，我们有实体店[1]。", [product], 0.3, question="你们在成都有实体店吗？")
    assert out.citations == []
    confirmed = check(
        "You can return items within 30 days [1].",
        [RETURNS],
        0.3,
        question="Can I return items within 30 days?",
    )
    assert [c.doc_id for c in confirmed.citations] == ["returns"]
