import pytest

from app.dialogue.sentiment import analyse_sentiment
from app.domain import Lang

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "lang", "label", "anger"),
    [
        # English
        ("This is RIDICULOUS, I want my money back!!!", "en", "negative", True),
        ("You sold me a broken toaster, you bunch of crooks", "en", "negative", True),
        ("I'm contacting my bank for a chargeback", "en", "negative", True),
        ("The toaster is disappointing, the bread comes out uneven.", "en", "negative", False),
        ("Unfortunately the mug arrived cracked.", "en", "negative", False),
        ("Absolutely love the new toaster, thanks!", "en", "positive", False),
        ("The desk fan is great and really quiet.", "en", "positive", False),
        ("Does the toaster have a defrost setting?", "en", "neutral", False),
        ("My order number is 99812, it was placed on Tuesday.", "en", "neutral", False),
        ("Can you recommend a good toaster?", "en", "neutral", False),
        # Chinese
        ("你们这是欺诈，我要投诉！！", "zh", "negative", True),
        ("退钱！什么破店", "zh", "negative", True),
        ("电热毯有点失望，加热不均匀", "zh", "negative", False),
        ("烤面包机很好用，谢谢", "zh", "positive", False),
        ("物流很快，包装也很精美", "zh", "positive", False),
        ("烤面包机有几档火力？", "zh", "neutral", False),
        ("麻烦帮我查一下订单", "zh", "neutral", False),
        ("破壁机的杯子是玻璃的吗", "zh", "neutral", False),
    ],
)
def test_labels_and_anger(text: str, lang: Lang, label: str, anger: bool) -> None:
    result = analyse_sentiment(text, lang)
    assert (result.label, result.anger) == (label, anger), result
    assert -1.0 <= result.score <= 1.0


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I am not happy with the toaster", "en"),
        ("The fan doesn't work at all", "en"),
        ("The hoodie never arrived", "en"),
        ("对这次的售后不满意", "zh"),
        ("不太喜欢这个颜色", "zh"),
        ("一点都不好用", "zh"),
        ("插头和我的插座不兼容", "zh"),
    ],
)
def test_negated_praise_is_negative(text: str, lang: Lang) -> None:
    assert analyse_sentiment(text, lang).label == "negative"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The toaster is not bad, honestly", "en"),
        ("Easy exchange, no complaints", "en"),
        ("还不错不错", "zh"),
        ("一点没坏，包装很好", "zh"),
    ],
)
def test_negated_complaint_is_not_negative(text: str, lang: Lang) -> None:
    result = analyse_sentiment(text, lang)
    assert result.score > 0
    assert not result.anger


def test_intensifiers_strengthen() -> None:
    assert (
        analyse_sentiment("very disappointed", "en").score
        < analyse_sentiment("disappointed", "en").score
    )
    assert analyse_sentiment("非常满意", "zh").score > analyse_sentiment("满意", "zh").score


def test_all_caps_counts_words_not_acronyms() -> None:
    shouting = analyse_sentiment("WHY IS THIS TAKING SO LONG", "en")
    assert "all_caps" in shouting.cues
    assert shouting.anger
    assert shouting.label == "negative"
    acronyms = analyse_sentiment("Does the USB hub work with HDMI and a DC adapter?", "en")
    assert "all_caps" not in acronyms.cues
    assert not acronyms.anger


def test_exclamations_alone_are_not_anger() -> None:
    happy = analyse_sentiment("The new kettle is amazing!!!", "en")
    assert "exclamations" in happy.cues
    assert (happy.label, happy.anger) == ("positive", False)


def test_repeated_question_is_a_cue() -> None:
    earlier = ["Where is my parcel 88123?", "hello"]
    same = analyse_sentiment("where is my parcel 88123", "en", earlier)
    assert "repeated_question" in same.cues
    close = analyse_sentiment("where is my parcel 88123 please", "en", earlier)
    assert "repeated_question" in close.cues
    fresh = analyse_sentiment("Can I pay by card?", "en", earlier)
    assert "repeated_question" not in fresh.cues
    assert "repeated_question" not in analyse_sentiment("ok", "en", ["ok"]).cues


def test_repeated_question_with_punctuation_is_anger_in_chinese() -> None:
    result = analyse_sentiment("我的快递到哪里了？？", "zh", ["我的快递到哪里了"])
    assert {"repeated_question", "exclamations"} <= set(result.cues)
    assert result.anger
    assert result.label == "negative"


def test_cues_name_what_fired() -> None:
    result = analyse_sentiment("Worst shop ever, SCAM, I will report you!!", "en")
    assert {"all_caps", "exclamations", "insult", "complaint_word"} <= set(result.cues)
    assert result.score <= -0.5


def test_deterministic() -> None:
    text = "我问了三遍了，到底什么时候发货！！"
    assert analyse_sentiment(text, "zh") == analyse_sentiment(text, "zh")
