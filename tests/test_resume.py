"""What an unfinished build leaves for the next (`rag.resume`): here the log of a PDF's pages
kept as they are read; the documents read and the batches embedded are exercised through whole
builds in test_lifecycle.py."""
from rag.resume import Checkpoint, PageLog
from rag.types import Chunk


def test_pages_added_are_read_back_in_order_and_a_line_cut_by_a_kill_is_cut_off(tmp_path):
    path = tmp_path / "pages" / "doc.jsonl"
    log = PageLog(path)
    assert log.pages() == []  # nothing kept yet
    log.add(1, ["Pump station 1 lifted 111 megalitres."])
    log.add(2, ["Its filters", [["Filter", "Cleaned"], ["A", None]]])  # a table's rows, an empty cell
    assert PageLog(path).pages() == [(1, ["Pump station 1 lifted 111 megalitres."]),
                                      (2, ["Its filters", [["Filter", "Cleaned"], ["A", None]]])]
    with path.open("ab") as fh:
        fh.write(b'{"page": 3, "blocks": ["Pump sta')  # the kill came in the middle of a write
    again = PageLog(path)
    assert [n for n, _ in again.pages()] == [1, 2]
    again.add(3, ["Pump station 3"])  # follows the whole lines, not the cut one
    assert [n for n, _ in PageLog(path).pages()] == [1, 2, 3]


def test_a_documents_page_log_goes_once_its_chunks_are_kept(tmp_path):
    saved = Checkpoint(tmp_path / ".embedded", "fingerprint-of-the-weights")
    reading = {"chunk_size": 100}
    log = saved.page_log("manual.pdf", "ab" * 32, reading)
    log.add(1, ["page one"])
    assert saved.page_log("manual.pdf", "ab" * 32, reading).pages() == [(1, ["page one"])]
    assert saved.page_log("manual.pdf", "cd" * 32, reading).pages() == []  # other bytes: another log
    assert saved.page_log("manual.pdf", "ab" * 32, {"chunk_size": 50}).pages() == []  # other settings too
    saved.save_read("manual.pdf", "ab" * 32, reading, "Manual", [Chunk("manual.pdf#0", "manual.pdf", "Manual", (), "x")])
    assert not log.path.exists() and saved.read("manual.pdf", "ab" * 32, reading)[0] == "Manual"
