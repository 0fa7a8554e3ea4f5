#!/usr/bin/env bash
# The fresh-clone check: what a new user gets from the README's two commands.
#
#   bash scripts/fresh_clone_check.sh [REPO] [--keep]
#
# Clones REPO (default: this checkout's committed HEAD) into a temporary folder and runs the README's
# two commands there exactly as written, with empty caches (pip's, the converted model's, Playwright's):
#   make serve   waits until the app answers on http://127.0.0.1:PORT, then stops it
#   make test    the whole suite, as CI runs it
# and prints one line per command with its exit code and time. Run it before every submission and quote
# its output. Exit status 0 only when both commands succeeded. --keep leaves the clone and its logs.
set -uo pipefail
SRC=$(cd "${1:-$(dirname "$0")/..}" && pwd)
KEEP=${2:-}
PORT=${PORT:-7860}
SERVE_WAIT=${SERVE_WAIT:-1800}   # seconds for `make serve` to install everything and answer
WORK=$(mktemp -d /tmp/fresh-clone.XXXXXX)
CLONE=$WORK/contract-review
export PIP_CACHE_DIR=$WORK/cache/pip XDG_CACHE_HOME=$WORK/cache CONTRACT_REVIEW_CACHE=$WORK/cache/contract-review
export PLAYWRIGHT_BROWSERS_PATH=$WORK/cache/ms-playwright

cleanup() {
  [ -n "${SERVE_PID:-}" ] && kill -- -"$SERVE_PID" 2>/dev/null
  if [ "$KEEP" = --keep ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

git clone -q "$SRC" "$CLONE" || { echo "clone of $SRC failed"; exit 1; }
cd "$CLONE"
echo "fresh clone of $(git -C "$CLONE" log -1 --format='%h %s') in $CLONE"
echo "commands from README.md: $(sed -n '/^```$/,/^```$/p' README.md | sed -n 2,3p | paste -sd';')"

# make serve: in its own process group, so that stopping it stops the app it started
T0=$SECONDS
setsid make serve > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
SERVE_RC=""
while [ $((SECONDS - T0)) -lt "$SERVE_WAIT" ]; do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/"; then SERVE_RC=0; break; fi
  if ! kill -0 "$SERVE_PID" 2>/dev/null; then wait "$SERVE_PID"; SERVE_RC=$?; break; fi
  sleep 5
done
SERVE_S=$((SECONDS - T0))
if [ "$SERVE_RC" = 0 ]; then
  SERVE_MSG="answered on http://127.0.0.1:$PORT after ${SERVE_S}s (install included); stopped"
else
  SERVE_MSG="failed (exit ${SERVE_RC:-timeout after ${SERVE_WAIT}s}) after ${SERVE_S}s; last lines:"$'\n'"$(tail -15 "$WORK/serve.log")"
  SERVE_RC=${SERVE_RC:-124}
fi
kill -- -"$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; SERVE_PID=""

T0=$SECONDS
make test > "$WORK/test.log" 2>&1
TEST_RC=$?
TEST_S=$((SECONDS - T0))
SUMMARY=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$WORK/test.log" | tail -1)

echo "make serve: exit $SERVE_RC, $SERVE_MSG"
echo "make test:  exit $TEST_RC, ${TEST_S}s: ${SUMMARY:-no pytest summary; last lines:}"
[ -z "$SUMMARY" ] && tail -20 "$WORK/test.log"
[ "$SERVE_RC" = 0 ] && [ "$TEST_RC" = 0 ]
