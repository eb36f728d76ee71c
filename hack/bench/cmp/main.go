// Command cmp benchmarks argocd-sops-plugin generate against the per-file sops CLI loop that
// script-based plugins run, in the same run, on an app of 1,000 encrypted Secrets and 1,000
// plain manifests; and generate with GOMAXPROCS=1 against GOMAXPROCS=2.
//
//	go run ./hack/bench/cmp            # prints a Markdown table for docs/PERFORMANCE.md
//
// The app is generated with the sops library and real age keys, and cached under
// ~/.cache/nerv/bench. Wall time is the best of three windows of -runs runs, spread over the
// benchmark; peak RSS comes from wait4's rusage.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/sopsdoc/sopstest"
)

// Targets from the issue; the run fails when one is missed.
const (
	targetVsCLI    = 25.0
	targetScaling  = 1.6
	targetPeakRSSB = 150 << 20
)

func main() {
	secrets := flag.Int("secrets", 1000, "encrypted Secrets in the app")
	plain := flag.Int("plain", 1000, "plain manifests in the app")
	runs := flag.Int("runs", 5, "runs of generate per setting in each of three windows (the best is reported)")
	machineFiles := flag.Int("machine-files", 200, "files in the machine's own 1 -> 2 core baseline")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench/cmp: -runs must be at least 1")
		os.Exit(2)
	}
	if err := run(*secrets, *plain, *runs, *machineFiles); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cmp:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall time.Duration
	rss  int64 // bytes
}

func run(nSecrets, nPlain, runs, machineFiles int) error {
	sops, err := testenv.Asset("sops")
	if err != nil {
		return err
	}
	app, keyFile, err := benchApp(nSecrets, nPlain)
	if err != nil {
		return err
	}
	bin, launcherBin, err := buildTools()
	if err != nil {
		return err
	}
	launcher = launcherBin
	defer os.RemoveAll(filepath.Dir(bin))

	env := append(os.Environ(), "SOPS_AGE_KEY_FILE="+keyFile)
	// The fixed cost of one generate: process start (the sops library links every KMS client,
	// over a thousand packages to initialise) and the setup around an app of one file. It is
	// serial, so it bounds the 1 -> 2 core figure; measured to separate it from the work.
	tiny, err := tinyApp()
	if err != nil {
		return err
	}
	// The plugin's runs come in three windows, a minute or more apart: before the CLI loop,
	// after it, and after the machine baseline. Host noise on this shared VM comes in bursts
	// that can cover a whole window of a few seconds, and a burst slows the two-core runs,
	// which need both vCPUs, more than the one-core runs.
	var startOne, startTwo, one, two sample
	window := func() error {
		if err := generate(bin, tiny, env, runs, 1, &startOne, &startTwo); err != nil {
			return err
		}
		return generate(bin, app, env, runs, nSecrets+nPlain, &one, &two)
	}
	if err := window(); err != nil {
		return err
	}

	// The baseline: what a shell plugin does, one `sops decrypt` process per encrypted file.
	files, err := filepath.Glob(filepath.Join(app, "secrets", "*.yaml"))
	if err != nil {
		return err
	}
	start := time.Now()
	var cliRSS int64
	for _, f := range files {
		s, _, err := timed(env, sops, "decrypt", f)
		if err != nil {
			return fmt.Errorf("sops decrypt %s: %w", f, err)
		}
		cliRSS = max(cliRSS, s.rss)
	}
	cli := time.Since(start)
	if err := window(); err != nil {
		return err
	}

	// The machine's own 1 -> 2 core figure for the same work with nothing shared: single-core
	// `sops decrypt` processes, one at a time against two at a time, over the first files.
	subset := files[:min(len(files), machineFiles)]
	machineOne, err := cliLoop(sops, subset, env, 1)
	if err != nil {
		return err
	}
	machineTwo, err := cliLoop(sops, subset, env, 2)
	if err != nil {
		return err
	}
	machine := float64(machineOne) / float64(machineTwo)
	if err := window(); err != nil {
		return err
	}

	vsCLI := float64(cli) / float64(two.wall)
	scaling := float64(one.wall) / float64(two.wall)
	fmt.Printf("app: %d encrypted Secrets + %d plain manifests; %s; best of %d runs in 3 windows of %d\n\n",
		nSecrets, nPlain, runtime.GOOS+"/"+runtime.GOARCH, 3*runs, runs)
	fmt.Println("| measurement | wall time | peak RSS |")
	fmt.Println("| --- | ---: | ---: |")
	fmt.Printf("| `sops decrypt` per file (CLI loop, %d processes) | %s | %s (per process) |\n", len(files), cli.Round(time.Millisecond), mib(cliRSS))
	fmt.Printf("| `argocd-sops-plugin generate`, GOMAXPROCS=1 | %s | %s |\n", one.wall.Round(time.Millisecond), mib(one.rss))
	fmt.Printf("| `argocd-sops-plugin generate`, GOMAXPROCS=2 | %s | %s |\n", two.wall.Round(time.Millisecond), mib(two.rss))
	fmt.Printf("| fixed cost: `generate` of a one-file app, GOMAXPROCS=1 | %s | %s |\n", startOne.wall.Round(time.Millisecond), mib(startOne.rss))
	fmt.Printf("| fixed cost: `generate` of a one-file app, GOMAXPROCS=2 | %s | %s |\n", startTwo.wall.Round(time.Millisecond), mib(startTwo.rss))
	fmt.Printf("\nspeed-up vs CLI loop: %.1fx (target >= %.0fx)\n", vsCLI, targetVsCLI)
	fmt.Printf("speed-up 1 -> 2 cores: %.2fx (target >= %.1fx)\n", scaling, targetScaling)
	fmt.Printf("peak RSS: %s (target < %s)\n", mib(max(one.rss, two.rss)), mib(targetPeakRSSB))
	fmt.Printf("1 -> 2 cores for the work above the fixed cost: %.2fx\n",
		float64(one.wall-startOne.wall)/float64(two.wall-startTwo.wall))
	fmt.Printf("machine baseline, %d single-core `sops decrypt` processes one vs two at a time: %s -> %s, %.2fx\n",
		len(subset), machineOne.Round(time.Millisecond), machineTwo.Round(time.Millisecond), machine)

	var missed []string
	if vsCLI < targetVsCLI {
		missed = append(missed, "speed-up vs CLI")
	}
	if scaling < targetScaling {
		missed = append(missed, "1->2 core scaling")
	}
	if max(one.rss, two.rss) >= targetPeakRSSB {
		missed = append(missed, "peak RSS")
	}
	if len(missed) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(missed, ", "))
	}
	return nil
}

// generate runs `generate app` runs times with GOMAXPROCS=1 and with GOMAXPROCS=2,
// alternating and back to back so that both see the same machine, and keeps in one and two
// the best wall time and the highest peak RSS of each so far. It checks that all want objects
// were printed. One round before them is not counted: on this VM a run after two idle seconds
// is 15-25 % slower with one core and with two, and runs right after the single-core CLI
// loop, which leaves the second vCPU idle, were 10-20 % slower with two cores.
func generate(bin, app string, env []string, runs, want int, one, two *sample) error {
	for r := range runs + 1 {
		for _, procs := range []int{2, 1} {
			s, out, err := timed(append(env, fmt.Sprintf("GOMAXPROCS=%d", procs)), bin, "generate", app)
			if err != nil {
				return err
			}
			if n := bytes.Count(out, []byte("\nkind: ")) + bytes.Count(out[:min(len(out), 64)], []byte("kind: ")); n < want {
				return fmt.Errorf("generate printed %d objects, want %d", n, want)
			}
			if r == 0 {
				continue
			}
			b := two
			if procs == 1 {
				b = one
			}
			if b.wall == 0 || s.wall < b.wall {
				b.wall = s.wall
			}
			b.rss = max(b.rss, s.rss)
		}
	}
	return nil
}

// cliLoop decrypts files with one single-core `sops decrypt` process per file, parallel
// processes at a time, and returns the wall time.
func cliLoop(sops string, files []string, env []string, parallel int) (time.Duration, error) {
	env = append(env, "GOMAXPROCS=1")
	next := make(chan string)
	errs := make(chan error, parallel)
	start := time.Now()
	for range parallel {
		go func() {
			var err error
			for f := range next {
				if err == nil {
					if _, _, err = timed(env, sops, "decrypt", f); err != nil {
						err = fmt.Errorf("sops decrypt %s: %w", f, err)
					}
				}
			}
			errs <- err
		}()
	}
	for _, f := range files {
		next <- f
	}
	close(next)
	var err error
	for range parallel {
		err = errors.Join(err, <-errs)
	}
	return time.Since(start), err
}

// tinyApp returns a cached app dir holding one plain ConfigMap.
func tinyApp() (string, error) {
	dir := filepath.Join(testenv.CacheDir(), "bench", "cmp-tiny")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny\ndata:\n  a: b\n"
	return dir, os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte(cm), 0o644)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// launcher is the path of the launcher built by buildTools.
var launcher string

// timed runs path with args through the launcher (./launcher) and returns the command's wall
// time, its peak RSS (wait4's rusage) and its stdout. The launcher is there for the RSS: Go
// starts a child with vfork, and Linux starts a vforked child's ru_maxrss at its parent's
// own peak, so a child smaller than this process (sops decrypt, a one-file generate)
// reported this process' peak, which the sops library it links makes about 50 MiB.
func timed(env []string, path string, args ...string) (sample, []byte, error) {
	report, w, err := os.Pipe()
	if err != nil {
		return sample{}, nil, err
	}
	defer report.Close()
	cmd := exec.Command(launcher, append([]string{path}, args...)...)
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{w} // fd 3
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	w.Close()
	if err != nil {
		return sample{}, nil, fmt.Errorf("%s: %w: %s", path, err, stderr.String())
	}
	var wall time.Duration
	var rssKiB int64
	if _, err := fmt.Fscan(report, &wall, &rssKiB); err != nil {
		return sample{}, nil, fmt.Errorf("%s: no report from the launcher: %w", path, err)
	}
	return sample{wall: wall, rss: rssKiB * 1024}, out.Bytes(), nil
}

// buildTools builds the plugin and the launcher into a new temporary directory.
func buildTools() (plugin, launcher string, err error) {
	dir, err := os.MkdirTemp("", "bench-cmp")
	if err != nil {
		return "", "", err
	}
	plugin, launcher = filepath.Join(dir, "argocd-sops-plugin"), filepath.Join(dir, "launcher")
	// The plugin is built as the Makefile, the release and the image build it: static,
	// stripped. (A cgo build starts about 8 ms faster here, but it is not what ships.)
	for _, b := range []struct{ out, pkg string }{{plugin, "./cmd/argocd-sops-plugin"}, {launcher, "./hack/bench/cmp/launcher"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("building %s (run from the repository root): %w", b.pkg, err)
		}
	}
	// Write the new 48 MiB binary out now rather than while the first runs are timed.
	syscall.Sync()
	return plugin, launcher, nil
}

// benchApp returns the cached app dir and its key file, creating them on first use.
func benchApp(nSecrets, nPlain int) (app, keyFile string, err error) {
	root := filepath.Join(testenv.CacheDir(), "bench", fmt.Sprintf("cmp-%d-%d", nSecrets, nPlain))
	app, keyFile = filepath.Join(root, "app"), filepath.Join(root, "keys.txt")
	if _, err := os.Stat(filepath.Join(root, "done")); err == nil {
		return app, keyFile, nil
	}
	if err := os.RemoveAll(root); err != nil {
		return "", "", err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	for _, d := range []string{"secrets", "config"} {
		if err := os.MkdirAll(filepath.Join(app, d), 0o755); err != nil {
			return "", "", err
		}
	}
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		return "", "", err
	}
	opts := sopstest.Options{EncryptedRegex: "^(data|stringData)$"}
	for i := range nSecrets {
		plain := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-%04d\n  namespace: bench\ntype: Opaque\nstringData:\n  username: user-%04d\n  password: password-%04d-bench\n  url: postgres://db-%04d.bench.svc:5432/app\n", i, i, i, i)
		enc, err := sopstest.Encrypt("s.yaml", []byte(plain), []string{id.Recipient().String()}, opts)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(app, "secrets", fmt.Sprintf("secret-%04d.yaml", i)), enc, 0o644); err != nil {
			return "", "", err
		}
	}
	for i := range nPlain {
		m := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-%04d\n  namespace: bench\n  labels:\n    app.kubernetes.io/name: bench\ndata:\n  level: info\n  replicas: \"%d\"\n", i, i%5)
		if err := os.WriteFile(filepath.Join(app, "config", fmt.Sprintf("config-%04d.yaml", i)), []byte(m), 0o644); err != nil {
			return "", "", err
		}
	}
	return app, keyFile, os.WriteFile(filepath.Join(root, "done"), nil, 0o644)
}
