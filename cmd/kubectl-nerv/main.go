// Command kubectl-nerv is the kubectl plugin `kubectl nerv`. All logic lives in pkg/cli.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/pkg/cli"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(cli.Execute(cli.NewRootCommand(streams), streams))
}
