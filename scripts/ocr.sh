#!/usr/bin/env bash
# The OCR engine for scanned PDFs and images: Debian's tesseract-ocr, installed once from apt.
# Optional: without it (no root, no sudo, no apt) everything else works and OCR is skipped with
# a warning, so a failure here only warns.
set -uo pipefail
command -v tesseract >/dev/null 2>&1 && exit 0
[ "${RAG_OCR:-on}" = "off" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo=none; fi
if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing tesseract-ocr from apt for OCR of scanned pages and images" >&2
  $sudo apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null 2>&1 && exit 0
fi
echo "warning: tesseract-ocr could not be installed; scanned PDF pages and images will not be read" >&2
exit 0
