#!/usr/bin/env bash
# The page (web/) built into node/web/static, which is committed: serving it needs no npm.
#   scripts/build_web.sh            npm ci from the committed lockfile (when it changed), then build
#   scripts/build_web.sh --install  only npm ci (the tests use axe-core and run web/src with Node)
#   scripts/build_web.sh --check    build into a temporary directory; fail unless it equals the committed files
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
STAMP="$WEB/node_modules/.ballot-ledger-stamp"
WANT="$(cat "$WEB/package.json" "$WEB/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "build_web: npm ci (pinned by web/package-lock.json)" >&2
  (cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$WANT" > "$STAMP"
fi
case "${1:-}" in
  --install) exit 0 ;;
  --check)
    OUT="$(mktemp -d)"
    trap 'rm -rf "$OUT"' EXIT
    (cd "$WEB" && node build.mjs "$OUT" >/dev/null)
    diff -r "$OUT" "$ROOT/node/web/static" && echo "build_web: the committed files are what the build produces"
    ;;
  *) (cd "$WEB" && node build.mjs) ;;
esac
