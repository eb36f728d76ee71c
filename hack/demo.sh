#!/usr/bin/env bash
# make demo: a local NERV cluster (real etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler; kwok nodes) and a tour of what NERV does on it. The cluster keeps running
# afterwards; `make demo-down` stops it. Ctrl-C during the tour stops it too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIR=.nerv/demo
BIN=$ROOT/bin
KUBECTL=$("$ROOT/hack/test-assets.sh" --print-path kubectl)
export KUBECONFIG=$ROOT/$DIR/kubeconfig

bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "==> $*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
kubectl() { "$KUBECTL" "$@"; }

mkdir -p "$DIR"
"$BIN/nerv-demo" down --dir "$DIR" >/dev/null 2>&1 || true
trap 'echo; echo "interrupted: stopping the demo cluster"; "$BIN/nerv-demo" down --dir "$DIR"; exit 130' INT TERM

step "Starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
setsid "$BIN/nerv-demo" up --dir "$DIR" \
  --node misato=192.168.1.100:server --node ritsuko=192.168.1.101:agent --node kaji=192.168.1.102:agent \
  >"$DIR/nerv-demo.log" 2>&1 </dev/null &
start=$SECONDS
until [ -f "$DIR/ready" ]; do
  if ! kill -0 $! 2>/dev/null; then
    echo "the demo cluster failed to start:" >&2; tail -20 "$DIR/nerv-demo.log" >&2; exit 1
  fi
  if [ $((SECONDS - start)) -gt 180 ]; then
    echo "the demo cluster did not become ready within 180s:" >&2; tail -20 "$DIR/nerv-demo.log" >&2
    "$BIN/nerv-demo" down --dir "$DIR"; exit 1
  fi
  printf '\r  waiting for the control plane and three kwok nodes ... %ds' $((SECONDS - start)); sleep 1
done
printf '\r  control plane and nodes ready in %ds                              \n' $((SECONDS - start))

step "Three nodes, Ready (simulated by kwok: the API objects are real, the machines are not)"
show kubectl get nodes -o wide

step "A small Deployment, scheduled and rolled out onto them"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: registry.k8s.io/pause:3.10
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 32Mi}}
YAML
show kubectl -n demo rollout status deployment/hello --timeout=60s
show kubectl -n demo get pods -o wide

step "Done"
cat <<MSG
The demo cluster is still running. Try:
  export KUBECONFIG=$ROOT/$DIR/kubeconfig
  $KUBECTL get nodes
  bin/kubectl-nerv --help
Logs of every component are in $DIR/. Stop everything with:
  make demo-down
MSG
