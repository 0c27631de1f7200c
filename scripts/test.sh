#!/usr/bin/env bash
# Run every test of scipion-em-disca: the engine tests with the bundled engine env's
# Python, then the Scipion tests (plugin protocols) with Scipion's venv. Sets up both
# environments first (scripts/setup_env.sh; fast when already done).
# Ends with one line "total: N passed, M failed, S skipped"; exit status 1 if anything
# failed or errored, or if no test ran.
#
# Extra arguments go to both pytest runs (e.g. -x, -k name).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${DISCA_WORK:-$REPO/.work}"
RESULTS="$WORK/test-results"

# A broken setup still ends with the closing line CI parses.
abort() { echo "$1" >&2; echo "total: 0 passed, 1 failed, 0 skipped"; exit 1; }
bash "$REPO/scripts/setup_env.sh" || abort "setup_env.sh failed"
# shellcheck disable=SC1091
. "$WORK/env.sh"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"

ENV_HOME="$(cd /tmp && python -c 'import pwem; pwem.Domain.getPlugins(); import disca; print(disca.Plugin.getHome())')"

echo "=== engine tests ($ENV_HOME/bin/python) ==="
# The real-engine report test (simulate -> extract -> cluster -> report with decoder, about
# a minute) runs here too; DISCA_SLOW_TESTS=0 leaves it out for quick local runs.
export DISCA_SLOW_TESTS="${DISCA_SLOW_TESTS:-1}"
# pytest is a test-only tool: it lives in .work/test-tools, put on the engine's path for the
# tests only, so the engine env users run holds what the engine needs and nothing more.
TOOLS="$WORK/test-tools"
PYTHONPATH="$TOOLS" "$ENV_HOME/bin/python" -c 'import pytest' 2>/dev/null \
    || "$ENV_HOME/bin/python" -m pip install -q --no-deps --target "$TOOLS" pytest pluggy iniconfig \
    || abort "cannot install pytest into $TOOLS"
(cd "$REPO" && PYTHONPATH="$TOOLS${PYTHONPATH:+:$PYTHONPATH}" "$ENV_HOME/bin/python" -m pytest \
    "$REPO/tests/engine" -q -p no:cacheprovider --junitxml="$RESULTS/engine.xml" "$@")
engine_rc=$?

echo "=== Scipion tests (disca.tests) ==="
# From a folder without a disca/ package, or it shadows the installed plugin.
RUN_DIR="$(mktemp -d)"
(cd "$RUN_DIR" && python -m pytest --pyargs disca.tests -q -p no:cacheprovider -p no:warnings \
    --junitxml="$RESULTS/scipion.xml" "$@")
scipion_rc=$?
rm -rf "$RUN_DIR"

python - "$RESULTS/engine.xml" "$RESULTS/scipion.xml" "$engine_rc" "$scipion_rc" <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:3]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"no test report {path}: {exc}")
        failed += 1
        continue
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        n = int(suite.get("tests", 0))
        f = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        s = int(suite.get("skipped", 0))
        passed += n - f - s
        failed += f
        skipped += s
# A crashed pytest (collection error, interpreter failure) can leave a report without
# failures: count its non-zero exit status (1 tests failed, 2+ errors) as a failure too.
crashed = sum(1 for rc in sys.argv[3:5] if int(rc) not in (0, 1, 5))
failed += crashed
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
EOF
