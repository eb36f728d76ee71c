package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes shared by every kubectl-nerv command; each command's docs say which it uses.
const (
	ExitOK = 0
	// ExitFailure: the command ran and found a problem (violations, failing checks, a failed step).
	ExitFailure = 1
	// ExitUsage: the command could not run: bad flags, unusable input, unreachable cluster.
	ExitUsage = 2
)

// ExitError carries the process exit code with the error that caused it.
type ExitError struct {
	Code int
	Err  error
	// Silent means the command already told the user everything (a report with failures);
	// Execute prints nothing more.
	Silent bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exitf returns an ExitError with a formatted message.
func Exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the code the process should end with for err.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// Execute runs cmd, prints any error once as "error: ..." on the error stream, and returns
// the exit code for os.Exit.
func Execute(cmd *cobra.Command, streams genericiooptions.IOStreams) int {
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Silent {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	}
	return ExitCode(err)
}
