// Command argocd-sops-plugin is the ArgoCD config management plugin (sidecar, CMP v2) that
// decrypts SOPS age-encrypted manifests in memory. The work lives in pkg/cmp and pkg/sopsdoc.
package main

import (
	"os"

	"github.com/nerv-platform/nerv/pkg/cmp"
)

func main() {
	streams := cmp.Streams{Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(cmp.Execute(cmp.NewCommand(streams, os.Getenv), streams))
}
