#!/usr/bin/env bash
# Headless Chromium for the monitor-page test (tests/integration/test_api_page.py).
# Idempotent: a no-op when /usr/bin/chromium exists. Uses Debian's package (Playwright drives it
# through executable_path; `playwright install` is never needed). Needs root; otherwise it says
# what to run and fails, so the page test is never silently skipped.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[browser] /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] /usr/bin/chromium is missing and there is no apt-get; install Chromium at /usr/bin/chromium" >&2
  exit 1
fi
echo "[browser] installing chromium from the distribution's packages ..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q chromium >/dev/null
fi
test -x /usr/bin/chromium
echo "[browser] $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
