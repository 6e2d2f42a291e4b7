"""Claim-level verification: evidence sentences, whole figures, subjects and rare terms."""
import pytest

from rag.checks import claims
from rag.config import default_embedder_path
from rag.checks.answer import check_answer
from rag.checks.figures import made_up_figures
from rag.checks.profiles import policy
from rag.config import Settings
from rag.testing import HashEmbedder
from rag.text import content_words

HTTP = ["The http.server module serves files from the current directory. By default the server "
        "listens on port 8000. Port 80 is the standard port of HTTP and needs root rights."]


class _Folder:
    path = default_embedder_path()


@pytest.fixture(scope="module")
def vocab():
    return claims.Vocabulary.of(_Folder())


def test_a_figure_must_be_in_the_sentence_that_backs_the_claim():
    embed = HashEmbedder().embed
    question = "Which port does http.server listen on?"
    # passage-wide, "80" is known (the third sentence): the old check let the wrong port through
    assert made_up_figures("The http.server module listens on port 80 [1].", HTTP, question) == \
        [("The http.server module listens on port 80 [1].", [])]
    assert made_up_figures("The http.server module listens on port 80 [1].", HTTP, question, embed=embed) == \
        [("The http.server module listens on port 80 [1].", ["80"])]
    assert made_up_figures("By default the server listens on port 8000 [1].", HTTP, question, embed=embed) == \
        [("By default the server listens on port 8000 [1].", [])]
    # a bare figure has no words to find its sentence by: any passage backs it, as before
    assert made_up_figures("8000 [1].", HTTP, question, embed=embed) == [("8000 [1].", [])]


def test_evidence_is_the_best_sentences_figures_aside():
    cands = ["The server listens on port 8000 by default.", "Port 80 is standard.", "Bread needs flour."]
    ev = claims.evidence("the server listens on port 80", cands)
    assert ev[0] == 0 and 2 not in ev
    assert claims.evidence("unrelated words entirely", cands) == []
    assert claims.unbacked_figures("It listens on 80.", [cands[0]]) == ["80"]
    assert claims.unbacked_figures("It listens on 8000.", [cands[0]]) == []


def test_rare_terms_come_from_the_embedders_vocabulary(vocab):
    assert vocab and "speed" in vocab.words
    assert vocab.rare("How long does the frobnitz warranty last at full speed?") == ["frobnitz", "warranty"]
    assert vocab.rare("What can models be used for in state-space settings?") == []
    assert claims.key_terms("What does RLHF stand for?", vocab, question=True) == ["RLHF"]
    assert claims.key_terms("Which site hosts models?", vocab, question=True) == []
    assert not claims.Vocabulary.of(object())  # no folder: nothing is rare, nothing is checked


def test_an_ordinary_word_made_of_common_ones_is_not_rare(vocab, monkeypatch):
    # a prefix on a word, an inflection, two words joined: ordinary, though the vocabulary lacks them
    question = "Is a drawback of untrusted underfitting models that they get queried less?"
    assert vocab.rare(question) == []
    # coined terms stay rare: they name what the documents may not hold
    assert vocab.rare("Which program does difftool launch? Does distillation help Mamba?") == \
        ["difftool", "distillation", "mamba"]
    assert vocab.rare("Is frobnitzing allowed?") == ["frobnitzing"]
    monkeypatch.setattr(claims, "ORDINARY_FORMS", False)
    assert vocab.rare(question) == ["drawback", "untrusted", "underfitting", "queried"]


def test_a_subject_needs_the_questions_most_specific_term_only_when_the_sentence_names_none():
    asked = ["frobnitz", "warranty"]
    passages = ["The gizmo warranty lasts two years.", "The frobnitz warranty lasts five years.",
                "A warranty covers repairs."]
    words = [content_words(p) for p in passages]
    assert claims.specific(asked, words) == ["frobnitz"]  # in one passage; warranty in all three
    assert claims.specific(["zorblax", "warranty"], words) == ["warranty"]  # a term no passage uses
    assert claims.specific(["zorblax"], words) == []
    bare = claims.subject("Two years [3].", asked, ["frobnitz"])
    assert bare.own == () and bare.asked == ("frobnitz",)
    assert bare.missing({"gizmo", "warranty", "two", "year"}) == ["frobnitz"]
    assert bare.missing({"frobnitz", "warranty"}) == []
    named = claims.subject("The warranty of the Frobnitz X2 lasts two years [3].", asked, ["frobnitz"])
    assert named.own == ("Frobnitz", "X2") and named.asked == ()  # it names a question term itself
    # its own rare words are no subject: a list item about "visualization" needs no such word cited
    assert claims.subject("1. **Visualization**: use plots [4].", ["interpreting"], []).own == ()


def _check(question, answer, blocks, profile):
    embed = HashEmbedder().embed
    pol = policy(Settings(guards=profile, checks_off="relevance"))
    return check_answer(question, question, answer, blocks, blocks, pol=pol, embed=embed,
                        vocabulary=claims.Vocabulary(["how", "long", "does", "the", "warranty", "last",
                                                      "gizmo", "two", "years", "covered"]))


GIZMO = ["The gizmo warranty lasts two years from the date of purchase.",
         "The frobnitz warranty lasts five years from the date of purchase."]


def test_a_claim_citing_a_passage_about_something_else_moves_is_cut_or_flagged():
    question = "How long does the frobnitz warranty last?"
    # cited the gizmo note: the frobnitz note supports the claim too, so the citation moves there
    moved = _check(question, "The warranty lasts five years from the date of purchase [1].", GIZMO, "small")
    assert not moved.code and moved.text == "The warranty lasts five years from the date of purchase [2]."
    assert moved.cited == (2,)
    # only the gizmo note backs "two years" (the frobnitz one says five): the citation does not
    # move, and the claim is cut by the small profile, flagged by the capable one
    cut = _check(question, "Two years from the date of purchase [1].", GIZMO, "small")
    assert cut.code == "other_subject" and "does not mention frobnitz" in cut.reason
    flagged = _check(question, "Two years from the date of purchase [1].", GIZMO, "capable")
    assert not flagged.code and flagged.text == "Two years from the date of purchase [1]."
    assert flagged.sentences[0]["verified"] is False
    assert flagged.sentences[0]["flags"] == ["cites [1], which does not mention frobnitz"]
    off = policy(Settings(guards="capable", checks_off="relevance,claims"))
    plain = check_answer(question, question, "Two years from the date of purchase [1].", GIZMO[:1], GIZMO[:1],
                         pol=off, embed=HashEmbedder().embed, vocabulary=claims.Vocabulary(["two"]))
    assert plain.sentences[0]["verified"] is True  # the switch: without claims, the old behaviour
