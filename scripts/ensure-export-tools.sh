#!/usr/bin/env bash
# Installs, if missing, what chat exports (PDF) and their tests use from Debian's
# packages: Noto Color Emoji (fonts-noto-color-emoji), which the PDF export takes its emoji
# from, and pdftotext (poppler-utils), with which the tests read exported PDFs back.
set -euo pipefail

need=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
command -v pdftotext >/dev/null || need+=(poppler-utils)
if [ ${#need[@]} -gt 0 ]; then
    echo ">> installing ${need[*]} (Debian packages)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
