#!/usr/bin/env bash
# The demo: the whole pipeline in a sandbox on loopback, ending in a verification.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec node scripts/demo.ts "$@"
