#!/usr/bin/env bash
# Builds, once, every binary and package NERV's tests and demo run, cached under
# ~/.cache/nerv/assets/<name>-<version>/. A second run finds everything and finishes in seconds.
#
#   hack/test-assets.sh                  build what is missing, print a summary
#   hack/test-assets.sh --only a,b       build only the named assets (etcd, kube-apiserver, kwok, ...)
#   hack/test-assets.sh --print-path X   print the path of asset X (building it if missing)
#
# Everything comes from the Go module proxy or Debian's packages; nothing is downloaded from
# anywhere else. Each binary is built into a temp dir and renamed into place, so an interrupted
# build never leaves a half-written asset that a later run would trust.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${NERV_CACHE:-$HOME/.cache/nerv}
ASSETS=$CACHE/assets

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0
SOPS_VERSION=v3.13.3
KREW_VERSION=v0.4.3

only=""
print_path=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=",$2,"; shift ;;
    --print-path) print_path=$2; only=",$2,"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "test-assets.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf 'test-assets: %s\n' "$*" >&2; }
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

# build NAME VERSION FILE COMMAND...: runs COMMAND with $OUT set to a temp dir unless
# ASSETS/NAME-VERSION/FILE already exists, then moves the temp dir into place.
build() {
  local name=$1 version=$2 file=$3; shift 3
  local dest=$ASSETS/$name-$version
  if [ -x "$dest/$file" ] || [ -f "$dest/$file" ]; then
    log "$name $version: cached"
    return 0
  fi
  log "$name $version: building (this can take minutes on a cold cache)"
  mkdir -p "$ASSETS"
  rm -rf "$ASSETS/.$name".*   # leftovers of an interrupted build
  local start=$SECONDS
  OUT=$(mktemp -d "$ASSETS/.$name.XXXXXX")
  if ! "$@"; then
    rm -rf "$OUT"
    log "$name $version: FAILED"
    return 1
  fi
  rm -rf "$dest"
  mv "$OUT" "$dest"
  log "$name $version: built in $((SECONDS - start))s"
}

kube_ldflags() {
  local major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  # Without these, /version reports v0.0.0-master and version-skew logic misbehaves.
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

build_kube() {
  local cmd=$1
  (cd "$ROOT/hack/tools/kubernetes" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$OUT/$cmd" "k8s.io/kubernetes/cmd/$cmd")
}

build_etcd() {
  (cd "$ROOT/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  GOBIN=$OUT CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # kwok refuses to start ("no stages found") without its stage definitions; the module ships them.
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$OUT/stages"
  local f
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "$dir/kustomize/stage/$f.yaml" "$OUT/stages/"
  done
  chmod u+w "$OUT/stages"/*.yaml
  for f in "$OUT/stages"/*.yaml; do cat "$f"; echo "---"; done > "$OUT/stages.yaml"
}

build_sops() {
  GOBIN=$OUT CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
}

# krew's own CLI and manifest validator: the krew manifest test and `make release` run them.
build_krew() {
  GOBIN=$OUT CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/krew/cmd/$1@$KREW_VERSION"
}

debian_packages() {
  local missing=() pkg
  for pkg in nix-bin openssh-server age; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "debian packages: cached (nix-bin openssh-server age)"
    return 0
  fi
  local start=$SECONDS sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  log "debian packages: installing ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  # Installing openssh-server must not start a system sshd: tests run their own on loopback.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "debian packages: installed in $((SECONDS - start))s"
}

total=$SECONDS
if [ -z "$print_path" ]; then wanted debian && debian_packages; fi
wanted etcd && build etcd "$ETCD_VERSION" etcd build_etcd
wanted kube-apiserver && build kube-apiserver "$KUBE_VERSION" kube-apiserver build_kube kube-apiserver
wanted kwok && build kwok "$KWOK_VERSION" kwok build_kwok
wanted sops && build sops "$SOPS_VERSION" sops build_sops
wanted kube-controller-manager && build kube-controller-manager "$KUBE_VERSION" kube-controller-manager build_kube kube-controller-manager
wanted kube-scheduler && build kube-scheduler "$KUBE_VERSION" kube-scheduler build_kube kube-scheduler
wanted kubectl && build kubectl "$KUBE_VERSION" kubectl build_kube kubectl
wanted krew && build krew "$KREW_VERSION" krew build_krew krew
wanted validate-krew-manifest && build validate-krew-manifest "$KREW_VERSION" validate-krew-manifest build_krew validate-krew-manifest

if [ -n "$print_path" ]; then
  found=$(ls "$ASSETS/$print_path"-*/"$print_path" 2>/dev/null | head -1)
  [ -n "$found" ] || { log "unknown asset $print_path"; exit 2; }
  echo "$found"
else
  log "done in $((SECONDS - total))s; assets in $ASSETS"
fi
