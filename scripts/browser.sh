#!/usr/bin/env bash
# The browser for the browser test: Debian's Chromium, installed once from apt. Playwright only
# drives it (never `playwright install`), so nothing is downloaded when the tests run.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing chromium from apt for the browser test" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
