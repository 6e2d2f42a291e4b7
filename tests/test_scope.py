"""The scope patterns: each named hypothesis catches its wording, and ordinary questions (the
shipped question sets' wordings that look alike) stay ordinary."""
import pytest

from rag.scope import PATTERNS, named_documents, recognise, topic_of

pytestmark = pytest.mark.unit

SOURCES = ["deep-learning-overview.md", "deep-learning-overview.txt", "notes/lora.md", "git-commit.html"]


@pytest.mark.parametrize("question,kind,reason", [
    ("Which files talk about transfer learning?", "documents", "which-documents"),
    ("Which of my notes mention LoRA?", "documents", "which-documents"),
    ("Which commands' pages mention the reflog?", "documents", "which-documents"),
    ("In which documents is dropout explained?", "documents", "which-documents"),
    ("List the files that discuss pooling", "documents", "which-documents"),
    ("Summarise notes/lora.md", "summary", "summarise"),
    ("Give me a summary of the notes", "summary", "summarise"),
    ("List the key features of transformer networks.", "list", "list-verb"),
    ("Please enumerate the strategies", "list", "list-verb"),
    ("What are all the advantages of LLMs?", "list", "all-every"),
    ("Which kinds of deep learning models besides neural networks do the notes list?", "list", "do-the-notes-list"),
    ("Which merge strategies does git merge document?", "list", "which-plural"),
    ("Which open-weight LLMs are mentioned as available for on-premise deployment?", "list", "which-plural"),
])
def test_each_pattern_catches_its_wording(question, kind, reason):
    scope = recognise(question, sources=SOURCES)
    assert scope is not None and (scope.kind, scope.reason) == (kind, reason)
    assert reason in PATTERNS


@pytest.mark.parametrize("question", [
    "What is LoRA?",
    "How long should the first summary line of a commit message be?",  # "summary" as a noun
    "Which file records which branch I currently have checked out?",  # a file as the answer
    "From which sources does Git read ignore patterns?",
    "Which article of the Treaty states that Commissioners should be independent?",
    "Does every layer have weights?",
    "What do pooling layers do?",
])
def test_ordinary_questions_stay_ordinary(question):
    assert recognise(question, sources=SOURCES) is None


def test_named_documents_full_name_wins_over_a_shared_stem():
    assert named_documents("Summarise deep-learning-overview.md", SOURCES) == ("deep-learning-overview.md",)
    assert named_documents("summarise the deep learning overview", SOURCES) == (
        "deep-learning-overview.md", "deep-learning-overview.txt")
    assert named_documents("summarise lora.md please", SOURCES) == ("notes/lora.md",)
    assert named_documents("What is a commit?", SOURCES) == ()
    # a one-word stem names its file after "according to", "in", "from" ..., else it is a topic
    assert named_documents("Which commands are listed according to giteveryday?", ["giteveryday.html"]) == (
        "giteveryday.html",)
    assert named_documents("Which files mention lora?", SOURCES) == ()


def test_caller_named_documents_win_and_a_which_question_within_one_reads_as_a_list():
    scope = recognise("Summarise this", sources=SOURCES, documents=("notes/lora.md",))
    assert scope.kind == "summary" and scope.documents == ("notes/lora.md",)
    scope = recognise("Which pages of deep-learning-overview.md mention CNNs?", sources=SOURCES)
    assert scope.kind == "list" and scope.documents == ("deep-learning-overview.md",)


def test_topic_drops_scope_words_and_document_names():
    assert topic_of("Which files talk about transfer learning?") == "transfer learning"
    assert topic_of("List all the steps of fine-tuning in notes/lora.md", ("notes/lora.md",)) == "steps fine-tuning"
    assert topic_of("Which pages describe a --abort option?") == "--abort option"
