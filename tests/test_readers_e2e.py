"""Every new format end to end with the real embedder: a unique fact in each generated file is
retrieved first and cited with its page, slide or sheet, through the library, the CLI and the
chat's /ask endpoint (after an upload of the new types)."""
import os
import subprocess
import sys

import pytest

from rag import RAG, samples
from rag.samples import write_text_pdf as make_pdf

pytestmark = pytest.mark.e2e

# (question, file, what its location must say)
FACTS = [
    ("When is the Velmor bridge inspection scheduled?", "works.docx", {"heading": "Inspections"}),
    ("How many new subscribers does the Quillon project aim for?", "deck.pptx", {"slide": 3}),
    ("How many Zephyrine gaskets are stored in warehouse 9?", "stock.xlsx", {"sheet": "Inventory", "row": 152}),
    ("What is the population of Tarnwick?", "towns.csv", {"row": 4}),
    ("When does the ferry to Brannoch island leave?", "novel.epub", {"heading": "The Harbour"}),
    ("What is the locker code of the Brisco lab?", "note.png", {}),
    ("How often must the Halvard turbine be serviced?", "manual.pdf", {"page": 2}),
]


def write_fixtures(folder):
    samples.write_docx(folder / "works.docx", [
        ("Roads", ["The ring road will be resurfaced in spring."]),
        ("Inspections", ["The Velmor bridge inspection is scheduled for 14 October."])])
    samples.write_pptx(folder / "deck.pptx", [
        ("Welcome", ["Agenda and introductions"]), ("Team", ["Four engineers joined this year"]),
        ("Quarterly targets", ["The Quillon project aims for 850 new subscribers by June."])])
    rows = [["Item", "Warehouse", "Count"]] + [[f"part {i:04d}", f"warehouse {i % 7 + 1}", i * 2] for i in range(1, 300)]
    rows[151] = ["Zephyrine gaskets", "warehouse 9", 412]  # sheet row 152
    samples.write_xlsx(folder / "stock.xlsx", {"Summary": [["Total", 1]], "Inventory": rows})
    (folder / "towns.csv").write_text("town,population\nOakley,1200\nBrint,800\nTarnwick,5321\n")
    samples.write_epub(folder / "novel.epub", [
        ("The Journey", "<p>They walked for three days through the hills.</p>"),
        ("The Harbour", "<p>The ferry to Brannoch island leaves at dawn every Tuesday.</p>")])
    samples.render_text(["The locker code of the Brisco lab is 5512."], width=900).save(folder / "note.png")
    text_pdf = folder.parent / "text.pdf"
    make_pdf(text_pdf, ["Safety rules for the machine hall."])
    samples.write_scanned_pdf(folder / "manual.pdf", [["The Halvard turbine must be serviced every 600 hours."]],
                              text_pdf=text_pdf.read_bytes())


@pytest.fixture(scope="module")
def formats(tmp_path_factory, real_rag):
    """One index over the generated files, sharing the session's loaded models."""
    base = tmp_path_factory.mktemp("formats")
    docs = base / "docs"
    docs.mkdir()
    write_fixtures(docs)
    rag = RAG(embedder=real_rag.embedder, index=str(base / "index"))
    report = rag.index([str(docs)])
    assert sorted(report.added) == sorted(f for _, f, _ in FACTS) and not report.skipped
    return rag, base


def check_location(loc: dict, heading: str, want: dict):
    if "heading" in want:
        assert want["heading"] in heading
    for key in ("page", "slide", "sheet"):
        if key in want:
            assert loc[key] == want[key]
    if "row" in want:
        assert loc["rows"][0] <= want["row"] <= loc["rows"][1]


@pytest.mark.parametrize("question, source, want", FACTS, ids=[f for _, f, _ in FACTS])
def test_each_format_retrieves_its_fact_first_with_its_location(formats, question, source, want):
    rag, _ = formats
    top = rag.search(question, top_k=3)[0]
    assert top.chunk.source == source
    loc = top.chunk.location.to_dict() if top.chunk.location else {}
    check_location(loc, top.chunk.heading, want)
    if source == "stock.xlsx":  # the cell's chunk names its columns
        assert top.chunk.text.startswith("| Item | Warehouse | Count |")


def test_cli_sources_name_the_slide(formats):
    _, base = formats
    out = subprocess.run([sys.executable, "-m", "rag", "ask", FACTS[1][0], "--index", str(base / "index")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAG_MAX_TOKENS": "96", "RAG_N_CTX": "2048"})
    assert out.returncode == 0, out.stderr
    assert "deck.pptx > Quarterly targets > slide 3" in out.stdout


def test_uploads_take_the_new_types_and_ask_cites_the_sheet(chat_app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(chat_app.url, verbose=False)
    write_fixtures(tmp_path)
    files = [tmp_path / n for n in ("stock.xlsx", "deck.pptx", "works.docx")]
    note, _ = client.predict([handle_file(str(p)) for p in files], api_name="/add_documents")
    for p in files:
        assert f"**{p.name}** is indexed" in note
    d = client.predict(FACTS[2][0], "few_shot", 4, None, api_name="/ask")
    assert d["hits"][0]["source"] == "stock.xlsx"
    assert d["hits"][0]["location"]["sheet"] == "Inventory"
    cited = [c for c in d["citations"] if c["source"] == "stock.xlsx"]
    assert cited, d
    assert cited[0]["sheet"] == "Inventory" and "sheet Inventory, rows" in cited[0]["location"]["label"]
    assert "Zephyrine gaskets" in cited[0]["text"]
