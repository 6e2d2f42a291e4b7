"""Context compression: the sentences of each passage that matter for the question."""
import pytest

from rag.context import compress
from rag.text import sentences
from rag.types import Chunk, Hit
from rag.testing import HashEmbedder

embed = HashEmbedder().embed

pytestmark = pytest.mark.unit


def test_compress_keeps_relevant_sentences_in_order():
    text = ("Owls hunt at night. Bread needs flour. Owls have silent feathers. Cars need fuel. "
            "Tax forms are due in April. Owls eat mice.")
    hit = Hit(Chunk("a#0", "a.txt", "A", (), text), 1.0)
    [out] = compress("What do owls eat at night?", [hit], embed=embed)
    kept = sentences(out.chunk.text)
    assert kept[-1] == "Owls eat mice." and "Owls hunt at night." in kept
    assert "Tax forms are due in April." not in kept and len(kept) <= 5
    assert hit.chunk.text == text  # the stored chunk is untouched
    heading = Hit(Chunk("c#0", "c.txt", "C", (), "Cars need fuel. Tax is due.\nParameter-Efficient "
                         "Fine-Tuning (LoRA)\nFine-tune only a small set of added parameters.\nBread needs "
                         "flour.\nSoup needs salt.\nTea needs water."), 1.0)
    [out] = compress("What is LoRA?", [heading], embed=embed)
    assert "Fine-tune only a small set of added parameters." in sentences(out.chunk.text)
    short = Hit(Chunk("b#0", "b.txt", "B", (), "One. Two."), 1.0)
    assert compress("q", [short], embed=embed)[0] is short


def test_compress_reads_markdown_as_rendered_and_drops_repeated_sentences():
    md = Hit(Chunk("n.md#0", "n.md", "", (), "- **Genetic Algorithms** (e.g. NEAT): evolve "
                   "[networks](/nn/networks \"title\").\n- Owls eat mice.\n- Bread needs flour.\n- Tax is due."), 1.0)
    txt = Hit(Chunk("n.txt#0", "n.txt", "", (), "Genetic Algorithms (e.g. NEAT): evolve networks.\n"
                    "Owls eat mice.\nCars need fuel.\nSoup needs salt."), 0.9)
    same = Hit(Chunk("n.txt#1", "n.txt", "", (), "Owls eat mice."), 0.8)
    out = compress("What is NEAT an example of?", [md, txt, same], embed=embed)
    first = sentences(out[0].chunk.text)
    assert "- Genetic Algorithms (e.g. NEAT): evolve networks." in first
    assert "**" not in out[0].chunk.text and "](" not in out[0].chunk.text
    # the .txt copy gives nothing the .md one did not, sentence for sentence
    later = [s for h in out[1:] for s in sentences(h.chunk.text)]
    assert "Genetic Algorithms (e.g. NEAT): evolve networks." not in later
    assert [h.chunk.id for h in out].count("n.txt#1") == 0  # wholly repeated: left out


def test_diagram_source_is_left_out_of_the_context():
    text = ("Pooling layers reduce the spatial dimensions of the data.\ngraph TD\n"
            "    A[Feature Maps] --> B[Pooling Layer]\n```mermaid\nThey keep the strongest signals.")
    hit = Hit(Chunk("p#0", "p.txt", "P", (), text), 1.0)
    [out] = compress("What do pooling layers do?", [hit], embed=embed)
    assert "-->" not in out.chunk.text and "graph TD" not in out.chunk.text and "```" not in out.chunk.text
    assert "Pooling layers reduce the spatial dimensions of the data." in out.chunk.text


def test_compress_keeps_passages_in_other_scripts():
    hits = [Hit(Chunk(f"r#{i}", "r.txt", "", (), t), 1.0 - i / 10)
            for i, t in enumerate(["Привет мир.", "Кошки едят мышей. Собаки лают.", "日本の首都は東京です。"])]
    assert len(compress("Что едят кошки?", hits, embed=embed)) == 3


def test_a_matching_heading_keeps_its_section_and_the_rarest_match_stays():
    text = ("Example mainstream CNNs include: ImageNet, ResNet, Inception.\nWord2Vec#\n"
            "Word2Vec described two ways to get efficient vector representations of words.\n"
            "CBOW walks through the sentence predicting the middle word.\n"
            "Skip-Gram tries to predict the words next to a given word.\n"
            "The inside of these models assigns a vector to a given word.\n"
            "King - Man + Woman = Queen\nArchitectures#\nAutoencoder networks recover data through a bottleneck.\n"
            "They behave as a non-linear PCA alternative.\nVariations of note include denoising ones.")
    hit = Hit(Chunk("w#3", "w.txt", "", (), text), 1.0)
    question = "What vector arithmetic example illustrates word2vec embeddings?"
    [out] = compress(question, [hit], embed=embed)
    assert "King - Man + Woman = Queen" in out.chunk.text
    assert "Autoencoder networks recover data through a bottleneck." not in out.chunk.text
    [off] = compress(question, [hit], embed=embed, sections=False)
    assert "King - Man + Woman = Queen" not in off.chunk.text  # the switch: the old rule lost it
    # the one sentence naming the question's rarest word is kept whatever the other scores
    filler = [f"Gardening tip {i} concerns soil moisture and tomato plants." for i in range(8)]
    hit = Hit(Chunk("g#0", "g.txt", "", (), " ".join(filler[:4] + ["Mulch helps zucchini."] + filler[4:])), 1.0)
    [out] = compress("Which tip concerns soil for zucchini plants?", [hit], embed=embed, rare=True)
    assert "Mulch helps zucchini." in sentences(out.chunk.text)
    [off] = compress("Which tip concerns soil for zucchini plants?", [hit], embed=embed)
    assert "Mulch helps zucchini." not in sentences(off.chunk.text)
