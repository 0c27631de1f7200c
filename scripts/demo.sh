#!/usr/bin/env bash
# DISCA demo from a fresh checkout (Debian/Ubuntu, Python 3.11, PyPI only, no GPU needed):
#   1. scripts/setup_env.sh: Scipion venv + this plugin + the bundled engine env
#      (`python -m scipion installb disca`), all under ${DISCA_WORK:-<repo>/.work};
#   2. scripts/demo_workflow.py: a headless Scipion project that simulates tomograms, imports
#      them, picks (DoG), extracts, clusters with DISCA (the default preset) and exports the clusters.
# Results go to ${DEMO_OUT:-<repo>/demo-output}; the last lines printed say where each is.
# Extra arguments go to demo_workflow.py (see: python scripts/demo_workflow.py --help),
# e.g. `scripts/demo.sh --snr 0.05`. A rerun replaces the demo project of the previous run.
# Each protocol's log (the engine's progress: stage, rate, time left) is echoed as it runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${DISCA_WORK:-$REPO/.work}"
OUT="${DEMO_OUT:-$REPO/demo-output}"

bash "$REPO/scripts/setup_env.sh"
# shellcheck disable=SC1091
. "$WORK/env.sh"

mkdir -p "$OUT"
# Run from the output folder: a folder containing disca/ (the repo root) would shadow the
# installed plugin.
cd "$OUT"
DISCA_ENV_SH="$WORK/env.sh" python "$REPO/scripts/demo_workflow.py" --out "$OUT" "$@"
