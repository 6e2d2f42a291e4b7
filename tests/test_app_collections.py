"""Collections through the running app's API (gradio_client): listed, created, uploaded into,
asked and deleted; bad names refused in one line."""
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(chat_app):
    from gradio_client import Client

    return Client(chat_app.url, verbose=False)


def test_collections_are_created_filled_asked_and_deleted(client, chat_app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    assert client.predict(api_name="/collections") == ["default"]
    for bad in ("../escape", "a/b", "notes📚", "x" * 500):
        with pytest.raises(AppError) as info:
            client.predict(bad, False, api_name="/create_collection")
        assert "invalid collection name" in str(info.value) and "\n" not in str(info.value).strip()
    assert not (chat_app.corpus.parent / "escape").exists()
    assert client.predict("shop", False, api_name="/create_collection") == "shop"
    assert client.predict(api_name="/collections") == ["default", "shop"]

    doc = tmp_path / "lathe-safety.md"
    doc.write_text("# Lathe safety\n\nA lathe chuck key must never be left in the chuck: the spinning "
                   "key is thrown across the workshop.\n")
    note, status = client.predict([handle_file(str(doc))], "shop", api_name="/add_documents")
    assert "lathe-safety.md** is indexed" in note.replace("\\", "") and "shop" in status
    shop = chat_app.corpus.parent / "collections" / "shop"
    assert (shop / "corpus" / "lathe-safety.md").is_file()
    assert not (chat_app.corpus / "lathe-safety.md").exists()  # not in the default collection

    # LoRA is all over the default collection and nowhere in this one: the gate abstains
    # before the model runs, from the shop's passages only
    d = client.predict("What is LoRA?", "few_shot", 4, None, "shop", api_name="/ask")
    assert d["abstained"] and {h["source"] for h in d["hits"]} == {"lathe-safety.md"}
    d = client.predict("What is the capital of Zorbania?", "few_shot", 4, None, "default", api_name="/ask")
    assert d["abstained"] and "lathe-safety.md" not in {h["source"] for h in d["hits"]}

    docs = client.predict("shop", api_name="/documents")
    assert [(d["source"], d["type"], d["n_chunks"]) for d in docs] == [("lathe-safety.md", "md", 1)]
    assert docs[0]["size"] == doc.stat().st_size and docs[0]["indexed"][:2] == "20"
    with pytest.raises(AppError, match="no document named"):
        client.predict("shop", "../../index/CURRENT", api_name="/remove_document")
    (shop / "corpus" / "drill-press.md").write_text("# Drill press\n\nClamp the work before drilling.\n")
    assert "1 added" in client.predict("shop", api_name="/rescan")
    note = client.predict("shop", "drill-press.md", api_name="/remove_document")
    assert "drill-press.md removed from the index" in note
    assert [d["source"] for d in client.predict("shop", api_name="/documents")] == ["lathe-safety.md"]

    assert client.predict("shop", api_name="/delete_collection") == "shop"
    assert client.predict(api_name="/collections") == ["default"]
    with pytest.raises(AppError, match="no collection named 'shop'"):
        client.predict("What is LoRA?", "few_shot", 4, None, "shop", api_name="/ask")
    trashed = list((chat_app.corpus.parent / "collections" / ".trash" / "collections").iterdir())
    assert [p.name.split(".")[0] for p in trashed] == ["shop"]
    assert (trashed[0] / "corpus" / "lathe-safety.md").is_file()  # moved, not deleted
