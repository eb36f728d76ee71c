package doctor

import "github.com/nerv-platform/nerv/internal/testenv"

// SharedEnv hands the package's control plane to the external tests (package doctor_test).
func SharedEnv() *testenv.Env { return env }
