package doctor_test

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/pkg/cli"
	"github.com/nerv-platform/nerv/pkg/doctor"
)

// TestCommand drives `kubectl nerv doctor` end to end against the package's apiserver.
func TestCommand(t *testing.T) {
	env := doctor.SharedEnv()
	run := func(args ...string) (string, string, int) {
		streams, _, out, errOut := genericiooptions.NewTestIOStreams()
		cmd := cli.NewRootCommand(streams)
		cmd.SetArgs(append([]string{"doctor", "--kubeconfig", env.Kubeconfig}, args...))
		code := cli.Execute(cmd, streams)
		return out.String(), errOut.String(), code
	}

	// The kubernetes category on its own passes once a node exists (kwok keeps it Ready);
	// TestDoctor may or may not have built its site yet, so ask for what holds either way.
	out, errOut, code := run("--category", "kubernetes", "-o", "json")
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json is not a report (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	if rep.APIVersion != doctor.ReportAPIVersion || rep.Kind != doctor.ReportKind || len(rep.Results) == 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Category != doctor.CategoryKubernetes {
			t.Errorf("--category kubernetes ran %s", r.ID)
		}
	}
	wantCode := cli.ExitOK
	if rep.Failed() {
		wantCode = cli.ExitFailure
	}
	if code != wantCode {
		t.Errorf("exit %d with failed=%v, want %d", code, rep.Failed(), wantCode)
	}

	out, _, _ = run("--category", "policy")
	if !strings.HasPrefix(out, "Cluster https://") || !strings.Contains(out, "\npolicy\n") || !strings.Contains(out, " passed, ") {
		t.Errorf("table output:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour written to a non-terminal")
	}
}
