package webhook

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzDecodeReview throws arbitrary bodies at the full HTTP handler (controller-runtime's
// review decoding, then ours); panics are not recovered here, so any panic fails, and every
// answer must be a well-formed AdmissionReview.
func FuzzDecodeReview(f *testing.F) {
	f.Add(review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false))
	f.Add(review(admissionv1.Update, "apps", "v1", "Deployment", "shop", "web", deploymentGood, true))
	f.Add(review(admissionv1.Delete, "networking.k8s.io", "v1", "NetworkPolicy", "shop", "np", `{"metadata":{"name":"np"},"spec":{"podSelector":{"matchExpressions":[{"key":"a","operator":"In","values":["b"]}]}}}`, false))
	f.Add(review(admissionv1.Create, "", "v1", "Pod", "", "", `{"metadata":{"generateName":"p-"},"spec":{"initContainers":[{"name":"i"}]}}`, false))
	f.Add(review(admissionv1.Create, "batch", "v1", "CronJob", "kube-system", "c", `{}`, false))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"object":null}}`))
	f.Add([]byte(`{"request":{"kind":{"version":"v1","kind":"ReplicationController"},"object":{"spec":{"template":null}}}}`))
	f.Add([]byte("{"))
	s := newTestServer(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := s.post(t, body)
		if !resp.Allowed && resp.Result == nil {
			t.Fatalf("a refusal without a status for %q", body)
		}
	})
}
