package cmp

import (
	"context"
	"encoding/base64"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// kustomize builds the app with kustomize over an in-memory copy of the app dir in which
// every SOPS file holds its plaintext. kustomize therefore reads encrypted resources,
// patches and generator files like any other, and the plaintext never reaches a disk.
func (g *Generator) kustomize(ctx context.Context, root, kustName string, files []appFile) ([]byte, error) {
	var secrets redactor
	index := make(map[string]int, len(files))
	for i, f := range files {
		index[f.rel] = i
	}
	decrypted := make([]bool, len(files)) // each index is written by one worker only
	contents, err := g.each(ctx, files, func(f appFile) ([]byte, error) {
		data, err := readLimited(f, g.Decryptor.MaxFileSize())
		if err != nil {
			return nil, err
		}
		if !sopsdoc.Detect(f.rel, data) {
			return data, nil
		}
		plain, _, err := g.Decryptor.Decrypt(f.rel, data)
		decrypted[index[f.rel]] = err == nil
		return plain, err
	})
	if err != nil {
		return nil, err
	}
	fs := filesys.MakeFsInMemory()
	for i, f := range files {
		if err := fs.WriteFile(filepath.Join(root, filepath.FromSlash(f.rel)), contents[i]); err != nil {
			return nil, fmt.Errorf("%s: in-memory file system: %w", f.rel, err)
		}
		if decrypted[i] {
			secrets.collect(f.rel, contents[i])
		}
	}

	kustData, err := fs.ReadFile(filepath.Join(root, kustName))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kustName, err)
	}
	if err := checkKustomizationPaths(kustName, kustData); err != nil {
		return nil, err
	}

	opts := krusty.MakeDefaultOptions()
	opts.PluginConfig = types.DisabledPluginConfig() // builtin generators and transformers only; no exec or Go plugins
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	resMap, err := krusty.MakeKustomizer(opts).Run(fs, root)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %s", secrets.redact(strings.ReplaceAll(err.Error(), root+"/", "")))
	}
	out, err := resMap.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize output: %s", secrets.redact(err.Error()))
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, fmt.Errorf("%s: %w (the kustomization renders no resources)", kustName, ErrNoManifests)
	}
	return out, nil
}

// checkKustomizationPaths refuses absolute paths and paths with ".." in the kustomization's
// file references, with a message naming the field, before kustomize reports a less direct
// "file not found" (the in-memory file system holds only the app dir anyway).
func checkKustomizationPaths(name string, data []byte) error {
	var k types.Kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return &sopsdoc.FileError{File: name, Err: sopsdoc.ErrInvalid, Reason: "YAML " + strings.TrimPrefix(err.Error(), "error converting YAML to JSON: yaml: ")}
	}
	var bad []string
	check := func(field, p string) {
		if p == "" || isRemote(p) {
			return
		}
		clean := path.Clean(filepath.ToSlash(p))
		if path.IsAbs(clean) || filepath.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") {
			bad = append(bad, fmt.Sprintf("%s: %s", field, p))
		}
	}
	list := func(field string, ps []string) {
		for i, p := range ps {
			check(fmt.Sprintf("%s[%d]", field, i), p)
		}
	}
	list("resources", k.Resources)
	list("bases", k.Bases)
	list("components", k.Components)
	list("crds", k.Crds)
	list("configurations", k.Configurations)
	list("generators", k.Generators)
	list("transformers", k.Transformers)
	list("validators", k.Validators)
	for i, p := range k.Patches {
		check(fmt.Sprintf("patches[%d].path", i), p.Path)
	}
	for i, p := range k.PatchesJson6902 {
		check(fmt.Sprintf("patchesJson6902[%d].path", i), p.Path)
	}
	for i, p := range k.PatchesStrategicMerge {
		if s := string(p); !strings.Contains(s, "\n") {
			check(fmt.Sprintf("patchesStrategicMerge[%d]", i), s)
		}
	}
	gen := func(field string, i int, kv types.KvPairSources) {
		for j, f := range kv.FileSources {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			check(fmt.Sprintf("%s[%d].files[%d]", field, i, j), f)
		}
		list(fmt.Sprintf("%s[%d].envs", field, i), kv.EnvSources)
		check(fmt.Sprintf("%s[%d].env", field, i), kv.EnvSource)
	}
	for i, s := range k.SecretGenerator {
		gen("secretGenerator", i, s.KvPairSources)
	}
	for i, c := range k.ConfigMapGenerator {
		gen("configMapGenerator", i, c.KvPairSources)
	}
	if p := k.OpenAPI["path"]; p != "" {
		check("openapi.path", p)
	}
	if len(bad) > 0 {
		return &sopsdoc.FileError{File: name, Err: ErrOutsideAppDir,
			Reason: "absolute paths and paths with .. are refused: " + strings.Join(bad, "; ")}
	}
	return nil
}

func isRemote(p string) bool {
	for _, prefix := range []string{"https://", "http://", "git@", "ssh://", "github.com/", "oci://"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// redactor removes decrypted values from kustomize's error messages, which may quote the
// objects they fail on.
type redactor struct{ values []string }

func (r *redactor) collect(rel string, plain []byte) {
	add := func(s string) {
		s = strings.TrimSpace(s)
		if len(s) >= 4 {
			r.values = append(r.values, s, base64.StdEncoding.EncodeToString([]byte(s)))
		}
	}
	switch sopsdoc.FormatForPath(rel) {
	case sopsdoc.FormatYAML, sopsdoc.FormatJSON:
		for _, doc := range strings.Split(string(plain), "\n---") {
			var v any
			if yaml.Unmarshal([]byte(doc), &v) == nil {
				walkLeaves("", v, add)
			}
		}
	case sopsdoc.FormatDotenv, sopsdoc.FormatINI:
		for _, line := range strings.Split(string(plain), "\n") {
			if _, v, ok := strings.Cut(line, "="); ok {
				add(v)
			}
		}
	default:
		add(string(plain))
		for _, line := range strings.Split(string(plain), "\n") {
			add(line)
		}
	}
	// Longest first, so a value containing another is replaced whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

// walkLeaves passes every string leaf to add, except the identifying fields kustomize
// errors need to stay readable (they are not encrypted by the usual encrypted_regex anyway).
func walkLeaves(key string, v any, add func(string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			walkLeaves(k, c, add)
		}
	case []any:
		for _, c := range t {
			walkLeaves(key, c, add)
		}
	case string:
		switch key {
		case "apiVersion", "kind", "name", "namespace":
		default:
			add(t)
		}
	}
}

func (r *redactor) redact(s string) string {
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}
