package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

func fakeCheck(id, category string, sev Severity, run func(context.Context, *Snapshot) Outcome) Check {
	return Check{ID: id, Category: category, Name: id, Severity: sev, Hint: "fix " + id, Run: run}
}

func TestRunnerOutcomes(t *testing.T) {
	never := make(chan struct{})
	checks := []Check{
		fakeCheck("p-warn", CategoryPolicy, SeverityWarning, func(context.Context, *Snapshot) Outcome { return Failf([]string{"a"}, "warned") }),
		fakeCheck("k-pass", CategoryKubernetes, SeverityError, func(context.Context, *Snapshot) Outcome { return Passf("fine") }),
		fakeCheck("k-panic", CategoryKubernetes, SeverityError, func(context.Context, *Snapshot) Outcome { panic("boom") }),
		{ID: "k-slow", Category: CategoryKubernetes, Name: "slow", Severity: SeverityError, Hint: "h", Timeout: 200 * time.Millisecond,
			Run: func(context.Context, *Snapshot) Outcome { <-never; return Passf("never") }},
		fakeCheck("a-skip", CategoryArgoCD, SeverityError, func(context.Context, *Snapshot) Outcome { return Skipf("absent") }),
		fakeCheck("x-custom", "extra", SeverityError, func(context.Context, *Snapshot) Outcome { return Passf("extra category last") }),
	}
	start := time.Now()
	rep, err := Run(context.Background(), Options{Config: env.Config, Checks: checks})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a hung check must not hold the run beyond its timeout: took %s", time.Since(start))
	}
	var ids []string
	for _, r := range rep.Results {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, ","); got != "k-pass,k-panic,k-slow,a-skip,p-warn,x-custom" {
		t.Errorf("order = %s: want category order, then declaration order", got)
	}
	want := map[string]struct {
		status Status
		msg    string
		hint   bool
	}{
		"k-pass":   {StatusPass, "fine", false},
		"k-panic":  {StatusFail, "check panicked: boom", true},
		"k-slow":   {StatusFail, "did not finish within 200ms", true},
		"a-skip":   {StatusSkip, "absent", false},
		"p-warn":   {StatusWarn, "warned", true},
		"x-custom": {StatusPass, "extra category last", false},
	}
	for _, r := range rep.Results {
		w := want[r.ID]
		if r.Status != w.status || !strings.HasPrefix(r.Message, w.msg) || (r.Hint != "") != w.hint {
			t.Errorf("%s: got %s hint=%q, want %s %q hint=%v", r.ID, r.Status, r.Hint, w.status, w.msg, w.hint)
		}
	}
	if rep.Summary != (Summary{Passed: 2, Warnings: 1, Failed: 2, Skipped: 1}) || !rep.Failed() {
		t.Errorf("summary = %+v", rep.Summary)
	}
	if rep.Cluster.Version == "" || rep.Cluster.Server != env.Config.Host {
		t.Errorf("cluster = %+v", rep.Cluster)
	}
}

func TestRunValidatesCategories(t *testing.T) {
	_, err := Run(context.Background(), Options{Config: env.Config, Categories: []string{"kubernetes", "metalb"}})
	if err == nil || !strings.Contains(err.Error(), `unknown category "metalb": use one of kubernetes, metallb,`) {
		t.Errorf("err = %v", err)
	}
	rep, err := Run(context.Background(), Options{Config: env.Config, Categories: []string{CategoryTraefik, CategoryKubernetes}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Category != CategoryKubernetes && r.Category != CategoryTraefik {
			t.Errorf("%s ran outside the selected categories", r.ID)
		}
	}
	if strings.Join(rep.Categories, ",") != "kubernetes,traefik" {
		t.Errorf("categories = %v", rep.Categories)
	}
}

func TestUnreachableAPIServer(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Options{Config: cfg, Wait: time.Minute, RetryInterval: 200 * time.Millisecond})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want an UnreachableError", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("gave up after %s: --timeout must bound --wait", d)
	}
	if !strings.Contains(err.Error(), "cannot reach the Kubernetes API at https://127.0.0.1:1") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("message: %v", err)
	}
}

func TestMissingAPIIsSkipped(t *testing.T) {
	client, dyn, err := clients(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := newSnapshot(context.Background(), client, dyn)
	widgets := crdKind{schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}, "Widget", "widgets"}
	_, err = s.customObjects(context.Background(), widgets)
	o := fromError(err)
	if o.Status != StatusSkip || o.Message != "widgets is not installed: no example.com/v1 Widget API" {
		t.Errorf("outcome = %+v", o)
	}
}

func TestSnapshotListsOnce(t *testing.T) {
	client, dyn, err := clients(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := newSnapshot(context.Background(), client, dyn)
	calls := 0
	l := &lazy[[]int]{}
	fetch := func(context.Context) ([]int, error) { calls++; time.Sleep(50 * time.Millisecond); return []int{1}, nil }
	done := make(chan struct{})
	for range 8 {
		go func() { _, _ = l.get(context.Background(), s.base, fetch); done <- struct{}{} }()
	}
	for range 8 {
		<-done
	}
	if calls != 1 {
		t.Errorf("fetch ran %d times, want once", calls)
	}
	// A waiter whose context ends gets its error; the fetch goes on for the others.
	l2 := &lazy[[]int]{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l2.get(ctx, s.base, fetch); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if got, err := l2.get(context.Background(), s.base, fetch); err != nil || len(got) != 1 {
		t.Errorf("after a waiter timed out: %v %v", got, err)
	}
}

func sampleReport() *Report {
	rep := &Report{
		APIVersion: ReportAPIVersion, Kind: ReportKind,
		Cluster:    ClusterInfo{Server: "https://127.0.0.1:6443", Version: "v1.37.2"},
		Categories: []string{CategoryKubernetes, CategoryArgoCD},
		StartedAt:  time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC), DurationMillis: 1234,
		Results: []Result{
			{ID: "kubernetes-api", Category: CategoryKubernetes, Name: "API reachable", Severity: SeverityError, Status: StatusPass, Message: "Kubernetes v1.37.2", Attempts: 1},
			{ID: "kubernetes-server-count", Category: CategoryKubernetes, Name: "odd number of servers", Severity: SeverityWarning, Status: StatusWarn, Message: "2 servers", Details: []string{"asuka", "misato"}, Hint: "add a server", Docs: DocsURL + "#kubernetes-server-count", Attempts: 1},
			{ID: "argocd-applications", Category: CategoryArgoCD, Name: "every Application Synced and Healthy", Severity: SeverityError, Status: StatusFail, Message: "1 of 3 Applications not Synced and Healthy", Details: []string{"argocd/traefik: sync=OutOfSync health=Degraded"}, Hint: "argocd app get NAME", Docs: DocsURL + "#argocd-applications", Attempts: 2},
			{ID: "argocd-age-key", Category: CategoryArgoCD, Name: "age key Secret", Severity: SeverityError, Status: StatusSkip, Message: "forbidden: User \"shinji\" cannot get resource \"secrets\"", Attempts: 1},
		},
	}
	rep.summarise()
	return rep
}

func TestRenderTable(t *testing.T) {
	var b bytes.Buffer
	if err := RenderTable(&b, sampleReport(), false); err != nil {
		t.Fatal(err)
	}
	want := `Cluster https://127.0.0.1:6443 (v1.37.2)

kubernetes
  ✔ API reachable: Kubernetes v1.37.2
  ⚠ odd number of servers: 2 servers
      asuka
      misato
      hint: add a server
      docs: ` + DocsURL + `#kubernetes-server-count

argocd
  ✖ every Application Synced and Healthy: 1 of 3 Applications not Synced and Healthy
      argocd/traefik: sync=OutOfSync health=Degraded
      hint: argocd app get NAME
      docs: ` + DocsURL + `#argocd-applications
  ○ age key Secret (skipped: forbidden: User "shinji" cannot get resource "secrets")

✖ 1 passed, 1 warnings, 1 failed, 1 skipped in 1.23s
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("colour without a terminal")
	}
	b.Reset()
	if err := RenderTable(&b, sampleReport(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[31m✖\x1b[0m every Application") || !strings.Contains(b.String(), "\x1b[32m✔\x1b[0m API reachable") {
		t.Errorf("coloured table lacks coloured marks:\n%q", b.String())
	}
}

// TestReportSchema pins the JSON and YAML field names documented in docs/doctor.md.
func TestReportSchema(t *testing.T) {
	j, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"apiVersion", "kind", "cluster", "categories", "startedAt", "durationMillis", "summary", "results"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	if m["apiVersion"] != "nerv.dev/v1alpha1" || m["kind"] != "DoctorReport" {
		t.Errorf("identity = %v %v", m["apiVersion"], m["kind"])
	}
	if s := m["summary"].(map[string]any); s["passed"] != 1.0 || s["warnings"] != 1.0 || s["failed"] != 1.0 || s["skipped"] != 1.0 {
		t.Errorf("summary = %v", s)
	}
	r := m["results"].([]any)[2].(map[string]any)
	for _, k := range []string{"id", "category", "name", "severity", "status", "message", "details", "hint", "docs", "durationMillis", "attempts"} {
		if _, ok := r[k]; !ok {
			t.Errorf("result lacks %q: %v", k, r)
		}
	}
	y, err := yaml.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "kind: DoctorReport\n") || !strings.Contains(string(y), "  id: argocd-applications\n") {
		t.Errorf("yaml:\n%s", y)
	}
}

func TestCheckCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range AllChecks() {
		if seen[c.ID] {
			t.Errorf("duplicate check ID %s", c.ID)
		}
		seen[c.ID] = true
		if c.Name == "" || c.Hint == "" || c.Run == nil || (c.Severity != SeverityError && c.Severity != SeverityWarning) {
			t.Errorf("check %s is incomplete", c.ID)
		}
		if ValidateCategories([]string{c.Category}) != nil {
			t.Errorf("check %s has unknown category %s", c.ID, c.Category)
		}
		if !strings.HasPrefix(c.ID, c.Category+"-") && !(c.Category == CategoryWebhook && strings.HasPrefix(c.ID, "nerv-webhook-")) {
			t.Errorf("check %s: IDs start with their category", c.ID)
		}
	}
}

// TestDocsListEveryCheck keeps docs/doctor.md in step with the catalogue: one section, whose
// heading is the anchor the hints link to, per check, and none for checks that are gone.
func TestDocsListEveryCheck(t *testing.T) {
	data, err := os.ReadFile("../../docs/doctor.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if id, ok := strings.CutPrefix(line, "#### "); ok {
			documented[id] = true
		}
	}
	for _, c := range AllChecks() {
		if !documented[c.ID] {
			t.Errorf("docs/doctor.md has no section #### %s", c.ID)
		}
		delete(documented, c.ID)
	}
	for id := range documented {
		t.Errorf("docs/doctor.md documents %s, which is not a check", id)
	}
}
