#!/usr/bin/env bash
# Sets up everything the tests need and runs them all with trial:
#   1. a virtualenv in .venv with the project and its test dependencies;
#   2. the type check (mypy with the mypy-zope plugin) and the lint (ruff), configured in
#      pyproject.toml: each tool that reports findings shows them and counts as one failure;
#   3. a throw-away MongoDB-wire server (mongod, or FerretDB built once from the Go module
#      proxy) for the MongoDB store tests — skipped when none can be had, unless
#      FLAMENCO_REQUIRE_MONGO=1 (CI), which turns that into a failure;
#   4. Debian's chromium for the browser tests (installed with apt-get when missing and this
#      runs as root) — without one they are skipped, unless CI=true, which fails them;
#   5. trial over tests/, then one summary line `N passed, M failed, K skipped` (the checks'
#      failures included).
set -uo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv || exit 1
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip || exit 1
# The tested versions (constraints.txt) of everything, so a run reproduces the last one.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt '.[test]' || exit 1
# The tests (and the twistd processes they start) use this checkout, not the installed copy.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# Type and lint checks: findings are failures, but the tests still run.
check_failures=0
check() {
    local name=$1 output
    shift
    if output=$("$@" 2>&1); then
        echo "$name: no findings" >&2
    else
        echo "$name reported findings (counted as 1 failure):"
        echo "$output"
        check_failures=$(( check_failures + 1 ))
    fi
}
check mypy .venv/bin/mypy
check ruff .venv/bin/ruff check flamenco tests bench twisted

stop_mongo() {
    if [ -n "${FLAMENCO_TEST_MONGO_PID:-}" ]; then
        bash tests/mongo-server/stop.sh >/dev/null 2>&1
        unset FLAMENCO_TEST_MONGO_PID
    fi
}
if exports=$(bash tests/mongo-server/start.sh); then
    eval "$exports"
    trap stop_mongo EXIT
    echo "MongoDB-wire test server: $FLAMENCO_TEST_MONGO_URL" >&2
elif [ "${FLAMENCO_REQUIRE_MONGO:-0}" = 1 ]; then
    echo "no MongoDB-wire test server could be started, and FLAMENCO_REQUIRE_MONGO=1" >&2
    echo "0 passed, $(( 1 + check_failures )) failed"
    exit 1
else
    echo "no MongoDB-wire test server: the MongoDB tests will be skipped" >&2
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
        >/dev/null 2>&1 || echo "could not install chromium: the browser tests will skip" >&2
fi

log=$(mktemp)
.venv/bin/python -m twisted.trial "${@:-tests}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
stop_mongo
summary=$(grep -E '^(PASSED|FAILED) \(' "$log" | tail -n 1)
rm -f "$log"
count() { local n; n=$(echo "$summary" | grep -oE "\b$1=[0-9]+" | head -n 1 | cut -d= -f2); echo "${n:-0}"; }
passed=$(( $(count 'successes') + $(count 'expectedFailures') ))
failed=$(( $(count 'failures') + $(count 'errors') + $(count 'unexpectedSuccesses') ))
skipped=$(count 'skips')
[ -n "$summary" ] || failed=$(( failed + 1 ))
failed=$(( failed + check_failures ))
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
