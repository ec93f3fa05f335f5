#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), type-checks, lints, runs every test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
npx tsc -p .
npx eslint --max-warnings 0 .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npx vitest run --reporter=default --reporter=json --outputFile.json=.sandbox/test-results.json "$@"
node -e 'const r=require("./.sandbox/test-results.json");console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`)'
