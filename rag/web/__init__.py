"""The chat in the browser: the Gradio adapter over `rag.workspace.ChatService`.

`python app.py` runs `rag.web.launch.main`. The modules, from the outside in: `launch` (the
command line, and serving the page with every guard in front), `guards` (the ASGI middlewares:
Host and Origin checks, the client's address, sign-in, upload checks), `queue` (a per-client
share of Gradio's queue), `ui` (the page and its API endpoints), `chat` (one exchange, streamed
into the chat; the API's answer).
"""
import os

# set before Gradio or the models load, whoever imports the chat first
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # private: the app calls no one
