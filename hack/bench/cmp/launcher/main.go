// Command launcher runs its arguments and reports their wall time and peak RSS, for
// hack/bench/cmp. It exists to be small: Linux starts a vforked child's ru_maxrss at its
// parent's peak, and the benchmark itself links the sops library.
//
//	launcher CMD [ARG...]   # stdout and stderr pass through; "WALL_NS MAXRSS_KIB" on fd 3
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: launcher CMD [ARG...]")
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if cmd.ProcessState != nil {
			return max(cmd.ProcessState.ExitCode(), 1)
		}
		return 1
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "no rusage on this platform")
		return 1
	}
	if _, err := fmt.Fprintf(os.NewFile(3, "report"), "%d %d\n", wall.Nanoseconds(), ru.Maxrss); err != nil {
		fmt.Fprintln(os.Stderr, "reporting:", err)
		return 1
	}
	return 0
}
