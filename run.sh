#!/usr/bin/env bash
# ./run.sh        set up, then open the chat on the shipped corpus (http://127.0.0.1:7860)
# ./run.sh test   set up, then run the test suite
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = "test" ]; then
  shift
  bash scripts/browser.sh
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python app.py "$@"
