package doctor

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// policySource is the engine the audit judges by and where its config came from.
type policySource struct {
	engine *policy.Engine
	from   string
}

// PolicyEngine returns the policy engine the audit uses and a phrase saying where its config
// came from: Options.PolicyConfig, the cluster's ConfigMap (one GET by name), or the
// built-in defaults when the ConfigMap is absent or unreadable. An invalid ConfigMap is an
// error: nerv-webhook would be refusing it too.
func (s *Snapshot) PolicyEngine(ctx context.Context) (*policy.Engine, string, error) {
	src, err := s.policyEngine.get(ctx, s.base, func(ctx context.Context) (policySource, error) {
		if s.policyOverride != nil {
			return policySource{s.policyOverride, "the given policy config"}, nil
		}
		ref := PolicyConfigMap
		defaults := func(why string) (policySource, error) {
			e, err := policy.NewEngine(policy.DefaultConfig())
			return policySource{e, "the default policy (" + why + ")"}, err
		}
		cm, err := s.Client.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return defaults(fmt.Sprintf("no ConfigMap %s/%s", ref.Namespace, ref.Name))
		case apierrors.IsForbidden(err):
			return defaults(fmt.Sprintf("ConfigMap %s/%s is forbidden to you", ref.Namespace, ref.Name))
		case err != nil:
			return policySource{}, fmt.Errorf("reading ConfigMap %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		data, ok := cm.Data[ref.Key]
		if !ok {
			return policySource{}, fmt.Errorf("ConfigMap %s/%s has no key %s", ref.Namespace, ref.Name, ref.Key)
		}
		source := fmt.Sprintf("ConfigMap %s/%s key %s", ref.Namespace, ref.Name, ref.Key)
		cfg, err := policy.LoadConfig([]byte(data), source)
		if err != nil {
			return policySource{}, err
		}
		e, err := policy.NewEngine(cfg)
		return policySource{e, source}, err
	})
	return src.engine, src.from, err
}
