#!/usr/bin/env bash
# Builds the Go tools a site needs (helm, helmfile, helm-diff) for each platform given
# (os/arch, default: this host's), pinned, from the Go module proxy, with the ldflags their own
# Makefiles set, into .tools/site/<os>-<arch>/. CGO off and -trimpath: the same inputs give the
# same bytes on any build host. Idempotent: a tool whose stamp matches its version and flags is
# not built again. `sealift bundle` carries these files as bin/<os>-<arch>/.
#   bash scripts/build-site-tools.sh                       # this host's platform
#   bash scripts/build-site-tools.sh linux/amd64 linux/arm64
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SEALIFT_TOOLS:-$ROOT/.tools}"
# Pinned versions and the upstream commits their release binaries report. Change here, nowhere else.
HELM_VERSION=v3.19.0          # sites run helm 3; >= 3.18 meets helm/helm#31160 (see reference)
HELM_COMMIT=3d8990f0836691f0229297773f3524598f46bda6
HELMFILE_VERSION=v1.8.0       # helmfile v1, built from its module source (its go.mod has replace lines)
HELM_DIFF_VERSION=v3.9.14     # the newest helm-diff the module proxy serves
# helmfile's commit: the module proxy records none for v1.8.0 (no Origin in its .info), so its
# version output names the tag and the proxy's timestamp, and no commit.

log() { printf 'build-site-tools: %s\n' "$*" >&2; }
export GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

module_dir() { # module version -> the unpacked source in the module cache
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
module_time() { # module version -> the proxy's commit time (RFC 3339), reproducible
  sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$(go env GOMODCACHE)/cache/download/$1/@v/$2.info"
}
required_version() { # go.mod module -> the version that go.mod requires (no network: read from the file)
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}

build() { # platform-dir name module version package ldflags
  local out="$1/$2" stamp="$1/.$2.stamp" want="$4 $GOOS/$GOARCH $6" dir
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "building $2 $4 for $GOOS/$GOARCH (minutes the first time; the module cache is shared between platforms)"
  dir="$(module_dir "$3" "$4")"
  [ -n "$dir" ] || { log "go mod download $3@$4 gave no directory"; exit 1; }
  (cd "$dir" && go build -trimpath -o "$out.tmp" -ldflags "$6" "$5")
  mv "$out.tmp" "$out"
  echo "$want" > "$stamp"
}

platforms=("$@")
[ "${#platforms[@]}" -gt 0 ] || platforms=("$(go env GOHOSTOS)/$(go env GOHOSTARCH)")
for platform in "${platforms[@]}"; do
  case "$platform" in
    linux/amd64 | linux/arm64) ;;
    *) log "unsupported platform $platform (linux/amd64 or linux/arm64)"; exit 2 ;;
  esac
  export GOOS="${platform%/*}" GOARCH="${platform#*/}"
  dest="$TOOLS/site/$GOOS-$GOARCH"
  mkdir -p "$dest"

  # helm's Makefile: -w -s, version/metadata/commit/tree state, and the Kubernetes version helm
  # assumes with no cluster (client-go's minor, major + 1): without it `helm template` takes
  # v1.20.0 and refuses charts with kubeVersion ">=1.21.0-0".
  helm_dir="$(module_dir helm.sh/helm/v3 "$HELM_VERSION")"
  k8s="$(required_version "$helm_dir" k8s.io/client-go)"   # v0.34.0
  k8s_major=$(( $(echo "${k8s#v}" | cut -d. -f1) + 1 ))
  k8s_minor="$(echo "$k8s" | cut -d. -f2)"
  v=helm.sh/helm/v3
  build "$dest" helm "$v" "$HELM_VERSION" ./cmd/helm \
    "-w -s -X $v/internal/version.version=$HELM_VERSION -X $v/internal/version.metadata= -X $v/internal/version.gitCommit=$HELM_COMMIT -X $v/internal/version.gitTreeState=clean -X $v/pkg/lint/rules.k8sVersionMajor=$k8s_major -X $v/pkg/lint/rules.k8sVersionMinor=$k8s_minor -X $v/pkg/chartutil.k8sVersionMajor=$k8s_major -X $v/pkg/chartutil.k8sVersionMinor=$k8s_minor"

  # helmfile's release build (.goreleaser.yml; the Makefile sets the same fields, unstripped):
  # -s -w and the go.szostok.io/version fields, the version without "v" as goreleaser writes it
  t="$(module_time github.com/helmfile/helmfile "$HELMFILE_VERSION")"
  build "$dest" helmfile github.com/helmfile/helmfile "$HELMFILE_VERSION" . \
    "-s -w -X go.szostok.io/version.version=${HELMFILE_VERSION#v} -X go.szostok.io/version.buildDate=$t -X go.szostok.io/version.commitDate=$t -X go.szostok.io/version.dirtyBuild=false"

  # helm-diff's Makefile: cmd.Version from plugin.yaml (the version without "v"). The checksum
  # database has no entry for this tag (the proxy serves it): skip the sumdb lookup for this one
  # module only; go.sum inside it still pins every dependency.
  GONOSUMDB=github.com/databus23/helm-diff build "$dest" helm-diff github.com/databus23/helm-diff/v3 "$HELM_DIFF_VERSION" . \
    "-X github.com/databus23/helm-diff/v3/cmd.Version=${HELM_DIFF_VERSION#v}"
done
