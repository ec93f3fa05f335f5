# Sourced by the entry scripts: runs the idempotent set-up and puts its tools first on PATH.
SEALIFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(SEALIFT_SETUP_QUIET=${SEALIFT_SETUP_QUIET:-0} bash "$SEALIFT_ROOT/scripts/setup.sh")"
cd "$SEALIFT_ROOT"
