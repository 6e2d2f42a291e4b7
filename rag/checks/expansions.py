"""The `expansions` check: an answer sentence that spells out an acronym or a term in a way no
passage does ("CycleGAN, which stands for Condition the Generator for Unlabeled Data") or gives
it an abbreviation no passage uses ("LoRaWAN (LOL-R)").

A small model asked about a name it does not know will often "explain" it: the expansion reads
as a fact, every other word of the sentence may be grounded, and neither the figures nor the
names check sees it (the expansion's words are ordinary words). What counts as saying so:

- "X stands for Y", "X is short for Y", "X (short for Y)", "X is an acronym / abbreviation for Y";
- "X, i.e. Y" and "X (i.e. Y)" after an acronym-like X (two capitals or more);
- "X (Y)" after an acronym-like X, where Y reads as its expansion: its initials spell X, or it is
  title-cased and starts with X's first letter ("LoRA (Low-Rank Adaptation)"); "(see below)",
  "(7B)" and "(a model by Meta)" are not;
- "... words (ABBR)": an acronym-like abbreviation in brackets.

An expansion is backed when the passages hold it as written, or its content words near a mention
of X (`WINDOW` characters either side), or everywhere in the passages with initials that spell
X. An abbreviation is backed when a passage uses it.
"""
from __future__ import annotations

import re

from ..text import STOPWORDS, content_words, normalise, sentences

WINDOW = 200  # characters either side of a mention of the term: about the sentence around it

_TERM = r"(?P<term>[A-Za-z][\w-]*\w)"
# what ends an expansion: a clause starting ("LoRA stands for Low-Rank Adaptation which ...",
# "... Adaptation and is used"); "and"/"to" alone do not ("Research and Development", "Seq to Seq")
_CLAUSE = re.compile(r"\s+(?:and\s+)?(?:which|that|is|are|was|were|has|have|had|who|where|while|because|"
                     r"used|so)\b.*$", re.I | re.S)
_EXP = r"(?P<exp>[^,;:.!?()\[\]\n—]+)"
# "X stands for Y", "X, which stands for Y", "X (short for Y)", "X is an acronym for Y"
_SAYS = re.compile(
    _TERM + r"(?:'s)?(?:\s*,\s*|\s*\(\s*|\s+)(?:(?:which|that)\s+)?(?:(?:is|was)\s+)?"
    r"(?:(?:also\s+)?(?:an?\s+)?(?:acronym|abbreviation|initialism)\s+(?:for|of)|stands?\s+for|stood\s+for|"
    r"short\s+for)\s+[\"'“‘*]*" + _EXP, re.I)
# "X, i.e. Y" and "X (i.e. Y)"
_IE = re.compile(_TERM + r"(?:\s*,\s*|\s*\(\s*|\s+)i\.\s?e\.,?\s+" + _EXP)
# "X (Y)": a bracketed expansion or abbreviation, read in `_unbacked`
_BRACKET = re.compile(_TERM + r"\s*\((?P<inside>[^()\[\]\n]+)\)")
_ABBREV = re.compile(r"[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_SAYS_INSIDE = re.compile(r"^\s*(?:i\.\s?e\.|short\s+for|stands?\s+for|an?\s+(?:acronym|abbreviation))", re.I)


def made_up_expansions(answer: str, sources: list[str]) -> list[tuple[str, list[str], str]]:
    """Each sentence of the answer with what it expands or abbreviates that no source says, as
    reasons ("expands CycleGAN as '...', which no passage says"; [] for none), and the sentence
    as a cut leaves it: "" when it must go, less its made-up brackets when those are all it
    got wrong ("LoRaWAN (LOL-R) is ..." → "LoRaWAN is ...": the words around them are what
    the sentence says, as with the coined abbreviations of `made_up_names`)."""
    passages = _Passages(sources)
    out = []
    for sent in sentences(answer):
        reasons, brackets = _unbacked(sent, passages)
        if len(brackets) < len(reasons):
            kept = ""
        else:
            kept = sent
            for start, end in reversed(brackets):
                kept = kept[:start] + kept[end:]
        out.append((sent, reasons, kept))
    return out


class _Passages:
    """The sources read once: their text, their normal form and their content words."""

    def __init__(self, sources: list[str]):
        self.texts = sources
        self.norm = " " + " ".join(normalise(s) for s in sources) + " "
        self.words = set().union(*map(content_words, sources)) if sources else set()

    def near(self, term: str) -> set[str]:
        """Content words within `WINDOW` characters of a mention of `term` (its plural too)."""
        found: set[str] = set()
        pattern = re.compile(rf"(?<!\w){re.escape(term)}(?:'?s)?(?!\w)", re.I)
        for text in self.texts:
            for m in pattern.finditer(text):
                found |= content_words(text[max(0, m.start() - WINDOW):m.end() + WINDOW])
        return found

    def uses(self, abbreviation: str) -> bool:
        """Whether a passage uses the abbreviation as a word (a plural "s" aside)."""
        return any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", text, re.I)
                   for a in {abbreviation, re.sub(r"s$", "", abbreviation)} if a for text in self.texts)


def _unbacked(sent: str, passages: _Passages) -> tuple[list[str], list[tuple[int, int]]]:
    """The reasons against a sentence, and the (start, end) of each made-up bracket among them
    (from the end of the word before it to its closing bracket)."""
    reasons: list[str] = []
    brackets: list[tuple[int, int]] = []
    said: set[str] = set()  # terms whose expansion a phrase gave, so "(short for ...)" counts once
    for pattern in (_SAYS, _IE):
        for m in pattern.finditer(sent):
            term, exp = m.group("term"), _expansion(m.group("term"), m.group("exp"))
            if pattern is _IE and not _acronym_like(term):
                continue  # "the optimiser, i.e. Adam" explains, it does not expand
            said.add(term)
            if exp and not _backed(term, exp, passages):
                reasons.append(f"expands {term} as '{exp}', which no passage says")
                bracket = _bracket_of(sent, m)
                if bracket:
                    brackets.append(bracket)
    for m in _BRACKET.finditer(sent):
        term, inside = m.group("term"), m.group("inside").strip()
        if _SAYS_INSIDE.match(inside) or term in said:
            continue  # "(short for ...)", "(i.e. ...)": read above
        if _ABBREV.fullmatch(inside) and _abbreviation_like(inside):
            if inside.lower() != term.lower() and not passages.uses(inside):
                reasons.append(f"abbreviates {_named_before(sent, m.start('term'), term)} as '{inside}', "
                               f"which no passage says")
                brackets.append((m.end("term"), m.end()))
        elif _acronym_like(term) and _reads_as_expansion(term, inside):
            exp = _expansion(term, inside)
            if not _backed(term, exp, passages):
                reasons.append(f"expands {term} as '{exp}', which no passage says")
                brackets.append((m.end("term"), m.end()))
    return reasons, brackets


def _bracket_of(sent: str, m: re.Match) -> tuple[int, int] | None:
    """Where "X (short for Y)" or "X (i.e. Y)" has its bracket, from the end of X on; None when
    the phrase is no bracket ("X stands for Y")."""
    if "(" not in sent[m.end("term"):m.start("exp")]:
        return None
    close = re.match(r"\s*\)", sent[m.end():])
    return (m.end("term"), m.end() + close.end()) if close else None


def _expansion(term: str, text: str) -> str:
    """The expansion proper: quotes and a following clause left out, and, when its initials
    spell the acronym, nothing past the word that completes it ("Low-Rank Adaptation and
    reduces memory" → "Low-Rank Adaptation")."""
    exp = _CLAUSE.sub("", text).strip(" \"'”’“‘*")
    words = list(re.finditer(r"[^\s-]+", exp))  # "Low-Rank" gives two initials
    end = _spells(term, [w.group(0) for w in words])
    return exp[:words[end].end()] if end is not None else exp


def _backed(term: str, exp: str, passages: _Passages) -> bool:
    if f" {normalise(exp)} " in passages.norm:
        return True
    words = content_words(exp)
    if not words or words <= passages.near(term):
        return True
    # the words are all there, apart from the term: a right expansion whose initials spell it
    # ("generative adversarial network" in one passage, "GAN" in another); a term that is no
    # name ("the term is short for ...") has no initials to check
    return words <= passages.words and (_spells(term, re.findall(r"[^\s-]+", exp)) is not None
                                        or not _acronym_like(term))


def _acronym_like(word: str) -> bool:
    return sum(c.isupper() for c in word) >= 2


def _abbreviation_like(word: str) -> bool:
    """Mostly capitals ("LOL-R", "LoRA", "GPT-4"): a name in brackets ("(PyTorch)", "(OpenAI)")
    is no abbreviation, and the names check reads it."""
    letters = [c for c in word if c.isalpha()]
    return _acronym_like(word) and sum(c.isupper() for c in letters) * 2 > len(letters)


def _spells(term: str, words: list[str]) -> int | None:
    """The index of the word whose initial completes the term's capitals, read in order as the
    words' initials ("BERT": Bidirectional Encoder Representations from Transformers), the
    first word's initial being the first capital; None when they do not spell it."""
    caps = [c.lower() for c in term if c.isupper()]
    initials = [re.sub(r"^\W+", "", w)[:1].lower() for w in words]
    if len(caps) < 2 or not initials or initials[0] != caps[0]:
        return None
    i = 0
    for n, initial in enumerate(initials):
        if initial == caps[i]:
            i += 1
            if i == len(caps):
                return n
    return None


def _reads_as_expansion(term: str, inside: str) -> bool:
    """Whether bracketed words after an acronym read as its expansion: their initials spell it,
    or they are title-cased (two content words or more) and start with its first letter."""
    words = re.findall(r"[^\s-]+", inside)
    if _spells(term, words) is not None:
        return True
    titled = [w for w in words if w.lower() not in STOPWORDS]
    return (len(titled) >= 2 and all(w[:1].isupper() for w in titled)
            and words[0][:1].lower() == next(c for c in term if c.isupper()).lower())


def _named_before(sent: str, start: int, term: str) -> str:
    """What a bracketed abbreviation shortens, for the reason: the name before it, or the last
    few words before it."""
    if any(c.isupper() for c in term):
        return term
    return " ".join(re.findall(r"[\w-]+", sent[:start])[-2:] + [term])
