#!/usr/bin/env bash
# make demo: a local NERV cluster (real etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler; kwok nodes; the real nerv-webhook registered over TLS) and a tour of what
# NERV does on it. The cluster keeps running afterwards; `make demo-down` stops it. Ctrl-C
# during the tour stops it too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIR=.nerv/demo
BIN=$ROOT/bin
KUBECTL=$("$ROOT/hack/test-assets.sh" --print-path kubectl)
export KUBECONFIG=$ROOT/$DIR/kubeconfig
started=$SECONDS

bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "==> $*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
kubectl() { "$KUBECTL" "$@"; }

mkdir -p "$DIR"
"$BIN/nerv-demo" down --dir "$DIR" >/dev/null 2>&1 || true
trap 'echo; echo "interrupted: stopping the demo cluster"; "$BIN/nerv-demo" down --dir "$DIR"; exit 130' INT TERM

step "Starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, nerv-webhook)"
setsid "$BIN/nerv-demo" up --dir "$DIR" --webhook-bin "$BIN/nerv-webhook" --webhook-manifests manifests/webhook \
  --spec examples/demo/nerv.yaml \
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
  printf '\r  waiting for the control plane, nerv-webhook and three kwok nodes ... %ds' $((SECONDS - start)); sleep 1
done
printf '\r  control plane, nerv-webhook and nodes ready in %ds                              \n' $((SECONDS - start))

step "Three nodes, Ready (simulated by kwok: the API objects are real, the machines are not)"
show kubectl get nodes -o wide

step "nerv-webhook is registered with the apiserver (TLS, failurePolicy Fail)"
show kubectl get validatingwebhookconfigurations

step "kubectl nerv validate: the same policies, offline, on a manifest without resource limits"
show "$BIN/kubectl-nerv" validate -f examples/demo/nolimits.yaml || echo "(exit $?: violations found, as expected)"

step "The apiserver asks nerv-webhook, which denies that Deployment"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if show kubectl apply -f examples/demo/nolimits.yaml; then
  echo "UNEXPECTED: the Deployment without limits was admitted" >&2; exit 1
fi
echo "(denied, as it should be)"

step "A compliant app, whose Secret is SOPS-encrypted in git, rendered by argocd-sops-plugin"
echo "The encrypted file, as committed:"
sed -n '1,9p' examples/demo/app/secret.enc.yaml
echo "..."
printf '$ %s\n' "SOPS_AGE_KEY_FILE=examples/demo/age-key.txt argocd-sops-plugin generate examples/demo/app | kubectl apply -f -"
SOPS_AGE_KEY_FILE=examples/demo/age-key.txt "$BIN/argocd-sops-plugin" generate examples/demo/app > "$DIR/app.yaml"
echo "(rendered $(grep -c '^kind:' "$DIR/app.yaml") objects, decrypted in memory; the Secret's values are not printed here)"
# The NetworkPolicy goes first (ArgoCD's sync orders policies before workloads too); the
# Deployment follows at once: nerv-webhook confirms a network denial against the apiserver, so
# a policy its cache has not seen yet still counts.
show kubectl apply -f examples/demo/app/networkpolicy.yaml
show kubectl apply -f "$DIR/app.yaml"
show kubectl -n demo rollout status deployment/greeter --timeout=60s
show kubectl -n demo get pods -o wide
printf '$ %s\n' "kubectl -n demo get secret greeter-credentials -o jsonpath='{.data.GREETING}' | base64 -d"
kubectl -n demo get secret greeter-credentials -o jsonpath='{.data.GREETING}' | base64 -d; echo

step "kubectl nerv doctor: what is healthy, what is not, and why"
echo "(this demo cluster runs no ArgoCD, MetalLB, Traefik, cert-manager or Longhorn: those checks are skipped or fail, with hints)"
show "$BIN/kubectl-nerv" doctor --spec examples/demo/nerv.yaml || echo "(exit $?: doctor found problems, as expected on a bare demo cluster)"

step "Done in $((SECONDS - started))s"
cat <<MSG
What you saw: a real apiserver with three kwok nodes; nerv-webhook denying a Deployment without
resource limits and admitting a compliant one whose pods a NetworkPolicy selects; a SOPS-encrypted
Secret decrypted in memory by argocd-sops-plugin; kubectl nerv doctor explaining the cluster's state.

The demo cluster is still running. Try:
  export KUBECONFIG=$ROOT/$DIR/kubeconfig
  $KUBECTL get pods -A
  bin/kubectl-nerv doctor --category kubernetes -o yaml
  bin/kubectl-nerv node apply --all --dry-run --spec examples/demo/nerv.yaml
  bin/kubectl-nerv init /tmp/site && ls -R /tmp/site
Logs of every component are in $DIR/. Stop everything with:
  make demo-down
MSG
