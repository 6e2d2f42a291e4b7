"""The chat as a shared workspace, in a real browser and through gradio_client, on the app with
sign-in: each user's conversations and private collections are theirs alone, and a conversation
comes back after the app restarts."""
import re
import time

import pytest

from conftest import SECURE_USERS as USERS
from test_browser import ARTIFACTS, page  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.e2e
NOT_THERE = "What is the capital of Zorbania?"  # abstains before the model runs: a fast answer


def _sign_in(page, url, user):
    page.goto(url)
    page.get_by_label(re.compile("username", re.I)).fill(user)
    page.get_by_label(re.compile("password", re.I)).fill(USERS[user])
    page.get_by_role("button", name=re.compile("login", re.I)).click()
    page.locator("#question textarea").wait_for()
    page.locator("#chat").wait_for()


def _conversations(page):
    """The titles the sidebar lists, the most recent first."""
    page.locator("#conversations").wait_for()
    return [t.strip() for t in page.locator("#conversations label").all_inner_texts()]


def _dropdown_options(page, elem_id):
    page.locator(f"#{elem_id} input").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def test_users_keep_their_own_conversations_and_collections_across_a_restart(secure_app, page):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    try:
        page.goto(secure_app.url)
        page.get_by_label(re.compile("password", re.I)).wait_for()  # sign-in first, nothing else
        assert page.locator("#chat").count() == 0
        _sign_in(page, secure_app.url, "alice")
        box = page.locator("#question textarea")
        # the app is shared with the queue tests: a question refused while their requests drain
        # ("busy") is asked again, as a person would
        for _ in range(6):
            box.fill(NOT_THERE)
            box.press("Enter")
            answered = page.locator("#chat").get_by_text("Not found in your documents")
            busy = page.get_by_text("This application is currently busy")
            answered.or_(busy).first.wait_for(timeout=240_000)
            if answered.count():
                break
            time.sleep(10)
        answered.wait_for(timeout=1_000)
        # the sidebar lists the new conversation under its full title, marked as the one open
        page.locator("#conversations label.selected").get_by_text(NOT_THERE).wait_for()
        page.locator("#collection-tools").get_by_text("New or delete collection").click()
        page.locator("#new-collection input, #new-collection textarea").first.fill("alice-private")
        page.locator("#create-collection").click()
        page.locator("#collection-note").get_by_text("created").wait_for()

        # bob sees neither alice's conversation nor her collection, in the page or the API
        page.goto(secure_app.url + "logout")
        _sign_in(page, secure_app.url, "bob")
        assert not any("Zorbania" in o for o in _conversations(page))
        assert "alice-private" not in _dropdown_options(page, "collection")
        bob = Client(secure_app.url, auth=("bob", USERS["bob"]), verbose=False)
        assert bob.predict(api_name="/collections") == ["default"]
        with pytest.raises(AppError, match="no collection named 'alice-private'"):
            bob.predict(NOT_THERE, "few_shot", 4, None, "alice-private", api_name="/ask")
        with pytest.raises(AppError, match="no collection named"):
            bob.predict("alice-private", api_name="/delete_collection")

        # the app restarts; alice signs in again and resumes her conversation
        secure_app.restart()
        _sign_in(page, secure_app.url, "alice")
        page.locator("#conversations label").first.wait_for()
        options = _conversations(page)
        assert [o for o in options if "Zorbania" in o] == [f"{NOT_THERE} (1)"], options
        assert "alice-private" in _dropdown_options(page, "collection")
        # found by a word of its question, then opened from the sidebar
        page.locator("#conversation-search input, #conversation-search textarea").first.fill("zorbania")
        page.wait_for_function("() => document.querySelectorAll('#conversations label').length === 1")
        page.locator("#conversations label", has_text=NOT_THERE).click()
        chat = page.locator("#chat")
        chat.get_by_text(NOT_THERE).wait_for()
        chat.get_by_text("Not found in your documents").wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "workspace-restored.png"), full_page=True)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "workspace-failure.png"), full_page=True)
        raise
