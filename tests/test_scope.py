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


def test_the_patterns_are_the_settings_names_and_each_can_be_switched_off():
    from rag.config import WHOLE_PATTERNS, Settings
    from rag.errors import ConfigError

    assert set(PATTERNS) | {"overview-of-document"} == set(WHOLE_PATTERNS)
    question = "Which merge strategies does git merge document?"
    assert recognise(question).reason == "which-plural"
    assert recognise(question, off={"which-plural"}) is None
    with pytest.raises(ConfigError, match="whole_off: unknown pattern"):
        Settings.load(whole_off="which-plural,nope")


@pytest.mark.parametrize("question", [
    "What does the document say about dropout?",
    "How do I sum up the advantages of CNNs?",
    "What is the summary of the argument?",
    "Are all models trained with backpropagation?",
    "Do all the steps require a GPU?",
    "List comprehension in Python: how does it work?",
    "What analysis does the manual recommend?",
    "What status does git show after a merge?",
])
def test_ordinary_wordings_the_review_found_stay_ordinary(question):
    assert recognise(question, sources=SOURCES) is None


def test_a_follow_up_that_names_nothing_is_left_to_the_ordinary_path():
    assert recognise("Can you summarise that?", follow_up=True) is None
    assert recognise("List them all", follow_up=True) is None
    assert recognise("Can you summarise that?").kind == "summary"  # a first question: the collection
    assert recognise("Summarise notes/lora.md", sources=SOURCES, follow_up=True).documents == ("notes/lora.md",)


def test_a_file_named_like_the_topic_keeps_a_which_documents_question_collection_wide():
    sources = ["git-rebase.html", "git-merge.html", "python-tips.md"]
    scope = recognise("Which pages mention git rebase?", sources=sources)
    assert scope.kind == "documents" and scope.documents == () and scope.topic == "git rebase"
    assert recognise("Which files mention Python?", sources=sources).documents == ()


def test_topic_removes_only_whole_names_present_in_the_question():
    assert topic_of("Which files mention regex patterns?", ("notes/x.md", "notes/lora.md")) == "regex patterns"
    assert topic_of("List all the algorithms", ("data/go.md",)) == "algorithms"


def test_no_pattern_backtracks_without_end_on_a_long_hostile_question():
    """A hang guard, not a speed goal: a catastrophic backtracking pattern takes hours on these
    (the survey's code-word pattern did on 100 characters of "a_a_..."), a linear one
    milliseconds; the bound only has to tell the two apart on a busy machine."""
    import time

    from rag.survey import LITERAL

    sources = [f"doc-{i}-Name{i}.md" for i in range(2000)]
    hostile = ["Which files mention " + "a_" * 2000 + "a-b?", "Which files mention " + " ".join(
        f"Word{i} a_a_a_a" for i in range(400)) + "?", "List all " + "every " * 700 + "kinds"]
    t0 = time.perf_counter()
    for question in hostile:
        recognise(question[:4000], sources=sources)
        LITERAL.findall(question[:4000])
    assert time.perf_counter() - t0 < 20
