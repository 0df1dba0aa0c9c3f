#!/usr/bin/env bash
# Installs the servers the test suite starts on 127.0.0.1 by itself (CI calls this once).
#   Dovecot: IMAP server for the email channel tests (tests/email/dovecot.py).
#   Chromium: Debian's headless browser for the web app tests (tests/web), driven by Playwright.
# The tests start and stop them; nothing here runs a daemon.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
dovecot --version
/usr/bin/chromium --version 2>/dev/null || true
