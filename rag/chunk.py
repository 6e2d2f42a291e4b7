"""Stage 2: split Documents into Chunks measured in embedder tokens.

The embedder sees "title > headings" followed by the chunk text, and that whole string must fit
its max sequence length: a chunk that overflowed would be silently truncated by the model.
"""
from __future__ import annotations

from .types import Chunk, Document, Location, Section

# A table whose header row takes more than this share of a chunk is split as plain text: its
# header repeated in every chunk would leave too little room for rows.
TABLE_HEADER_MAX_SHARE = 0.5

HEADER_MAX_CHARS = 160


def embed_text(chunk: Chunk) -> str:
    """The string that is embedded: provenance first, so headings help retrieval."""
    head = " > ".join([chunk.title, *chunk.headings])[:HEADER_MAX_CHARS]
    return f"{head}\n{chunk.text}" if head else chunk.text


class Chunker:
    """Splits documents with langchain's recursive splitter, lengths counted by `tokenizer`."""

    def __init__(self, tokenizer, *, max_tokens: int, chunk_size: int, chunk_overlap: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens  # the embedder's limit, special tokens included
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        # the splitter measures the same pieces and separators again while merging: a third of
        # the calls are new strings
        self._lengths: dict[str, int] = {}

    def _len(self, text: str) -> int:
        n = self._lengths.get(text)
        if n is None:
            if len(self._lengths) > 100_000:  # bounded: a big corpus streams through one Chunker
                self._lengths.clear()
            n = self._lengths[text] = len(self.tokenizer.tokenize(text))
        return n

    def _splitter(self, size: int):
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=min(self.chunk_overlap, size // 2),
            length_function=self._len,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end", strip_whitespace=True)

    def split(self, doc: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        splitters: dict[int, object] = {}
        for section in doc.sections:
            probe = Chunk("", doc.source, doc.title, section.headings, "")
            # 2 special tokens ([CLS], [SEP]) and the header line share the model's window
            room = self.max_tokens - 2 - self._len(embed_text(probe) + "x") + 1
            size = max(16, min(self.chunk_size, room))
            splitter = splitters.get(size) or splitters.setdefault(size, self._splitter(size))
            if section.table is not None and section.table.rows:
                pieces = self._table_pieces(section, size)
                if pieces is not None:
                    for piece, location in pieces:
                        chunks.append(Chunk(id=f"{doc.source}#{len(chunks)}", source=doc.source, title=doc.title,
                                            headings=section.headings, text=piece, location=location))
                    continue
            for piece in splitter.split_text(section.text):
                piece = piece.strip()
                if not piece:
                    continue
                chunks.append(Chunk(id=f"{doc.source}#{len(chunks)}", source=doc.source,
                                    title=doc.title, headings=section.headings, text=piece,
                                    location=section.location))
        return chunks

    def _table_pieces(self, section: Section, size: int):
        """A table in chunks of whole rows, each chunk starting with the header and separator
        lines, so a cell is always read under its column's name; each chunk's location gets its
        row range. None when the header is too wide for that (`TABLE_HEADER_MAX_SHARE`)."""
        from .readers.tables import markdown_rows

        table = section.table
        header, rule, *lines = markdown_rows(table.header, table.rows)
        head = f"{header}\n{rule}"
        head_len = self._len(head + "\n")
        if head_len > size * TABLE_HEADER_MAX_SHARE:
            return None
        numbers = table.row_numbers if len(table.row_numbers) == len(lines) else ()
        out: list[tuple[str, Location | None]] = []
        group: list[int] = []
        used = head_len

        def where(first: int, last: int):
            if section.location is None or not numbers:
                return section.location
            return section.location.with_rows(numbers[first], numbers[last])

        def close() -> None:
            if group:
                out.append(("\n".join([head, *(lines[j] for j in group)]), where(group[0], group[-1])))
                group.clear()

        for j, line in enumerate(lines):
            n = self._len(line + "\n")
            if head_len + n > size:  # a row longer than a chunk: its text split, each part under the header
                close()
                used = head_len
                for part in self._splitter(max(16, size - head_len)).split_text(line):
                    out.append((f"{head}\n{part}", where(j, j)))
                continue
            if used + n > size:
                close()
                used = head_len
            group.append(j)
            used += n
        close()
        return out
