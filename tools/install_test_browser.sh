#!/usr/bin/env bash
# Installs the browser that tests/test_serve_browser.py drives: Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver).
# The README's test command runs it first. It never fails the command: where
# it cannot install them it says why and goes on, and the browser test then
# skips with its reason.
set -u
say() { echo "install_test_browser: $*"; }
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver are installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root, so not installing chromium (as root: apt-get install chromium chromium-driver); the browser test will skip"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get on this system, so no chromium; the browser test will skip"
  exit 0
fi
log="$(mktemp)"
say "apt-get install chromium chromium-driver ..."
if DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    chromium chromium-driver >>"$log" 2>&1; then
  say "installed $(chromium --version 2>/dev/null)"
else
  say "apt-get failed (the browser test will skip); its last lines:"
  tail -n 5 "$log"
fi
rm -f "$log"
exit 0
