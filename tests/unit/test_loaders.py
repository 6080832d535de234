import shutil
from pathlib import Path

import pytest

from app.config import ChunkingSettings
from app.domain import Document
from ingest.chunking import chunk_document, token_length
from ingest.loaders import LoadError, discover, load_file

pytestmark = pytest.mark.unit


def _load(shop_dir: Path, name: str) -> list[Document]:
    return load_file(shop_dir / name, shop_dir)


def test_discover_finds_supported_files_sorted(shop_dir: Path) -> None:
    names = [p.relative_to(shop_dir).as_posix() for p in discover([shop_dir])]
    assert names == sorted(names)
    assert "policies/returns.en.md" in names
    assert "page.html" in names


def test_discover_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        discover([tmp_path / "missing"])


def test_markdown_front_matter(shop_dir: Path) -> None:
    (doc,) = _load(shop_dir, "policies/returns.zh.md")
    assert (doc.id, doc.title, doc.kind, doc.lang) == ("t-returns-zh", "退货政策", "policy", "zh")
    assert not doc.text.startswith("---")


def test_plain_text_gets_path_id_and_detected_language(shop_dir: Path) -> None:
    (doc,) = _load(shop_dir, "notes.txt")
    assert doc.id == "notes.txt"
    assert doc.lang == "zh"


def test_html_drops_scripts_and_keeps_headings(shop_dir: Path) -> None:
    (doc,) = _load(shop_dir, "page.html")
    assert doc.title == "Gift Cards"
    assert "alert" not in doc.text
    assert "color:red" not in doc.text
    assert "## Balance" in doc.text


def test_faq_rows(shop_dir: Path) -> None:
    docs = _load(shop_dir, "faq.jsonl")
    assert [d.kind for d in docs] == ["faq", "faq"]
    assert docs[1].question == "怎么查询物流？"
    assert docs[1].text.startswith("打开")
    assert docs[0].metadata["category"] == "shipping"


def test_product_rows_flatten_attributes_and_state_facts(shop_dir: Path) -> None:
    (doc,) = _load(shop_dir, "products.jsonl")
    assert doc.metadata["sku"] == "T-1"
    assert doc.metadata["attr_wireless"] is True
    assert doc.metadata["price"] == 249.0
    assert "Out of stock" in doc.text
    assert "Price: 249.0 CNY" in doc.text


def test_csv_rows_with_and_without_bom(shop_dir: Path) -> None:
    assert _load(shop_dir, "rows.csv")[0].id == "t-csv-1"
    assert _load(shop_dir, "rows_bom.csv")[0].id == "t-csv-bom-1"


def test_kb_rows_of_the_shared_shape(tmp_path: Path) -> None:
    path = tmp_path / "kb_en_order_faq.jsonl"
    path.write_text(
        '{"id": "x:1", "title": "ORDER / cancel", "text": "Cancel in My Orders.", '
        '"source": "s", "language": "en", "meta": {"intent": "cancel", "tags": ["a", "b"]}}\n'
    )
    (doc,) = load_file(path, tmp_path)
    assert (doc.id, doc.kind, doc.lang) == ("x:1", "faq", "en")
    assert doc.metadata == {"intent": "cancel", "tags": "a, b"}


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.jsonl", b'{"id": "a", "text": "ok"}\n{broken\n', "line 2: invalid JSON"),
        ("bad2.jsonl", b'{"id": "a"}\n', "line 1: no text"),
        ("bad3.jsonl", b"[1, 2]\n", "expected a JSON object"),
        ("latin.md", "caf\xe9".encode("latin-1"), "not valid UTF-8"),
        ("empty.md", b"---\nid: x\n---\n\n", "empty document"),
        ("broken.pdf", b"%PDF-1.4 garbage", "PDF"),
        ("bad.csv", b"id,text\na,b,c\n", "more values than columns"),
    ],
)
def test_broken_files_raise_load_error(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(path, tmp_path)


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 20 100 Td (Warranty lasts one year.) Tj ET")
    page[NameObject("/Contents")] = writer._add_object(stream)
    path = tmp_path / "warranty.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    (doc,) = load_file(path, tmp_path)
    assert "Warranty lasts one year" in doc.text


def test_copy_of_a_file_keeps_declared_ids(shop_dir: Path, tmp_path: Path) -> None:
    shutil.copy(shop_dir / "faq.jsonl", tmp_path / "faq.jsonl")
    assert [d.id for d in load_file(tmp_path / "faq.jsonl", tmp_path)] == [
        "t-faq-en-1",
        "t-faq-zh-1",
    ]


# --- chunking --------------------------------------------------------------------------


def test_faq_is_one_chunk_embedded_by_its_question(shop_dir: Path) -> None:
    doc = _load(shop_dir, "faq.jsonl")[0]
    (chunk,) = chunk_document(doc, ChunkingSettings())
    assert chunk.id == "t-faq-en-1#0"
    assert chunk.embed_text == doc.question
    assert chunk.metadata["answer"] == doc.text
    assert chunk.text.startswith(doc.question or "")


def test_long_chinese_text_splits_at_sentence_ends() -> None:
    sentence = "自签收之日起三十天内可以申请退货，退款将在审核后原路返回。"
    doc = Document("zh-long", "退货", sentence * 60, "s", "policy", "zh")
    settings = ChunkingSettings(chunk_tokens=120, overlap_tokens=10)
    chunks = chunk_document(doc, settings)
    assert len(chunks) > 3
    assert all(token_length(c.text) <= 120 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert [c.id for c in chunks] == [f"zh-long#{n}" for n in range(len(chunks))]
    assert {c.metadata["n_chunks"] for c in chunks} == {len(chunks)}


def test_chunks_are_deterministic_and_carry_headings(shop_dir: Path) -> None:
    (doc,) = _load(shop_dir, "policies/returns.en.md")
    first = chunk_document(doc, ChunkingSettings())
    assert first == chunk_document(doc, ChunkingSettings())
    assert len({c.metadata["content_hash"] for c in first}) == 1
    assert first[0].metadata["heading"].startswith("Return Policy")
    assert "30 days" in " ".join(c.text for c in first)


def test_sections_that_do_not_fit_together_stay_apart() -> None:
    window = "You can return most items within thirty days of delivery for a full refund. " * 2
    opened = "Opened earbuds cannot be returned for hygiene reasons, unless they are faulty. " * 2
    text = f"# Returns\n\n## Window\n\n{window}\n\n## Exceptions\n\n{opened}"
    doc = Document("r", "Returns", text, "s", "policy", "en")
    chunks = chunk_document(doc, ChunkingSettings(chunk_tokens=40, overlap_tokens=0))
    assert len(chunks) >= 2
    assert any(c.metadata["heading"] == "Returns > Exceptions" for c in chunks)
    assert all(token_length(c.text) <= 40 for c in chunks)


def test_paragraph_breaks_survive_heading_split() -> None:
    doc = Document("p", "P", "# A\n\npara one.\n\npara two.", "s", "policy", "en")
    (chunk,) = chunk_document(doc, ChunkingSettings())
    assert "para one.\n\npara two." in chunk.text
