package doctor

import "github.com/nerv-platform/nerv/internal/testenv"

// TestEnv hands the package's control plane to the external tests (package doctor_test).
func TestEnv() *testenv.Env { return env }
