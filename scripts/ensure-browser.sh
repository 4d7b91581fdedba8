#!/usr/bin/env bash
# Installs what the browser tests need, if missing: Debian's Chromium and ChromeDriver
# (/usr/bin/chromium, /usr/bin/chromedriver) and axe-core from npm (tests/browser/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo ">> installing Chromium and ChromeDriver (Debian packages)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
    echo ">> installing axe-core (npm)"
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
