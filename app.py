"""The chat front end: `python app.py` opens http://127.0.0.1:7860 (`python app.py --help`).

One `RAG` (models and index) is loaded at start and shared by every browser tab and API
call. Answers stream token by token, then the cited passages are listed under them. Uploaded
documents are copied into the corpus folder and indexed incrementally, so they survive a
restart. Every failure the user can cause or meet becomes a one-line message in the page.

This file only starts the web adapter, `rag.web` (the page, its guards, the command line);
the work is done by the library (`rag.workspace.ChatService` and what it uses).
"""
import sys

from rag.web.launch import main

if __name__ == "__main__":
    sys.exit(main())
