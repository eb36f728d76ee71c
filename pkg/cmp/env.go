package cmp

import (
	"fmt"
	"strconv"
	"strings"
)

// Env is what the ArgoCD cmp-server tells the plugin about the Application, through
// environment variables. ArgoCD prefixes user-set plugin env with ARGOCD_ENV_ and passes
// plugin parameters as PARAM_<NAME>; both spellings are accepted for each setting, the
// parameter winning, so an Application can use either.
type Env struct {
	AppName      string // ARGOCD_APP_NAME: names the app in every error
	AppNamespace string // ARGOCD_APP_NAMESPACE: the destination namespace, shown with errors
	Revision     string // ARGOCD_APP_REVISION: the commit being rendered, shown with errors
	SourcePath   string // ARGOCD_APP_SOURCE_PATH: the app's path in the repo, shown with errors

	Include     string // PARAM_INCLUDE or ARGOCD_ENV_INCLUDE: globs of files to render (plain dirs)
	Exclude     string // PARAM_EXCLUDE or ARGOCD_ENV_EXCLUDE: globs of files to leave out
	MaxFileSize int64  // PARAM_MAX_FILE_SIZE or ARGOCD_ENV_SOPS_MAX_FILE_SIZE: bytes, 0 = default
}

// EnvFrom reads Env through getenv (os.Getenv in the plugin).
func EnvFrom(getenv func(string) string) (Env, error) {
	pick := func(param, env string) string {
		if v := getenv(param); v != "" {
			return v
		}
		// An array parameter arrives as PARAM_NAME_0, PARAM_NAME_1, ...
		var items []string
		for i := 0; ; i++ {
			v := getenv(param + "_" + strconv.Itoa(i))
			if v == "" {
				break
			}
			items = append(items, v)
		}
		if len(items) > 0 {
			return strings.Join(items, ",")
		}
		return getenv(env)
	}
	e := Env{
		AppName:      getenv("ARGOCD_APP_NAME"),
		AppNamespace: getenv("ARGOCD_APP_NAMESPACE"),
		Revision:     getenv("ARGOCD_APP_REVISION"),
		SourcePath:   getenv("ARGOCD_APP_SOURCE_PATH"),
		Include:      pick("PARAM_INCLUDE", "ARGOCD_ENV_INCLUDE"),
		Exclude:      pick("PARAM_EXCLUDE", "ARGOCD_ENV_EXCLUDE"),
	}
	if v := strings.TrimSpace(pick("PARAM_MAX_FILE_SIZE", "ARGOCD_ENV_SOPS_MAX_FILE_SIZE")); v != "" {
		n, err := parseSize(v)
		if err != nil {
			return Env{}, fmt.Errorf("max file size %q: %w", v, err)
		}
		e.MaxFileSize = n
	}
	return e, nil
}

// parseSize accepts a byte count with an optional Ki/Mi/Gi suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive number of bytes, optionally with Ki, Mi or Gi")
	}
	return n * mult, nil
}

// context is the prefix put before errors so a failed sync in the ArgoCD UI says which app
// and commit it is about.
func (e Env) context() string {
	if e.AppName == "" {
		return ""
	}
	var parts []string
	if e.AppNamespace != "" {
		parts = append(parts, "namespace "+e.AppNamespace)
	}
	if e.SourcePath != "" {
		parts = append(parts, "path "+e.SourcePath)
	}
	if e.Revision != "" {
		parts = append(parts, "revision "+e.Revision)
	}
	if len(parts) == 0 {
		return "app " + e.AppName
	}
	return fmt.Sprintf("app %s (%s)", e.AppName, strings.Join(parts, ", "))
}
