package testenv

import (
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// CRD returns a minimal CustomResourceDefinition for a kind: the right group, version, kind,
// plural and scope, a status subresource, and a schema that keeps every field. It stands in
// for a project's published CRD where a test needs the API to exist and objects to be stored,
// not the project's own validation.
func CRD(group, version, kind, plural string, namespaced bool) *apiextensionsv1.CustomResourceDefinition {
	scope := apiextensionsv1.ClusterScoped
	if namespaced {
		scope = apiextensionsv1.NamespaceScoped
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind),
			},
			Scope: scope,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:                   "object",
					XPreserveUnknownFields: ptr.To(true),
				}},
			}},
		},
	}
}

// PlatformCRDs are minimal CRDs for the platform services NERV deploys and checks: ArgoCD,
// MetalLB, cert-manager, Longhorn and k3s' Helm controller.
func PlatformCRDs() []*apiextensionsv1.CustomResourceDefinition {
	return []*apiextensionsv1.CustomResourceDefinition{
		CRD("argoproj.io", "v1alpha1", "Application", "applications", true),
		CRD("argoproj.io", "v1alpha1", "AppProject", "appprojects", true),
		CRD("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools", true),
		CRD("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements", true),
		CRD("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", false),
		CRD("cert-manager.io", "v1", "Issuer", "issuers", true),
		CRD("cert-manager.io", "v1", "Certificate", "certificates", true),
		CRD("longhorn.io", "v1beta2", "Node", "nodes", true),
		CRD("longhorn.io", "v1beta2", "Volume", "volumes", true),
		CRD("helm.cattle.io", "v1", "HelmChart", "helmcharts", true),
	}
}
