package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Where NERV installs MetalLB (pkg/nixos templates/modules/services/metallb.nix).
const metallbNamespace = "metallb-system"

// platformService is a LoadBalancer Service the spec gives a fixed address.
type platformService struct {
	component, namespace, name string
	ip                         func(*Snapshot) string
}

// platformServices are the Services NERV pins to the spec's serviceIPs.
var platformServices = []platformService{
	{"argocd", "argocd", "argocd-server", func(s *Snapshot) string { return s.Spec.Spec.Network.ServiceIPs.ArgoCD }},
	{"longhorn", "longhorn-system", "longhorn-ui-lb", func(s *Snapshot) string { return s.Spec.Spec.Network.ServiceIPs.Longhorn }},
	{"traefik", "traefik", "traefik", func(s *Snapshot) string { return s.Spec.Spec.Network.ServiceIPs.Traefik }},
}

func metallbChecks() []Check {
	return []Check{
		{
			ID: "metallb-controller", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "controller ready",
			Hint: "kubectl -n metallb-system describe deployment metallb-controller; without it no Service gets an address",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "metallb", metallbNamespace, workload{kindDeployment, []string{"metallb-controller", "controller"}})
			},
		},
		{
			ID: "metallb-speaker", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "speakers ready on every node",
			Hint: "kubectl -n metallb-system get pods -l app.kubernetes.io/component=speaker -o wide; a missing speaker leaves its node's addresses unannounced",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "metallb", metallbNamespace, workload{kindDaemonSet, []string{"metallb-speaker", "speaker"}})
			},
		},
		{
			ID: "metallb-pool", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "IPAddressPool covers the spec's pool",
			Hint: "apply an IPAddressPool in metallb-system with spec.addresses [start-end] of spec.network.loadBalancerPool (kubectl nerv generate renders it)",
			Run:  checkMetalLBPool,
		},
		{
			ID: "metallb-l2advertisement", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "an L2Advertisement announces the pools",
			Hint: "apply an L2Advertisement in metallb-system listing the pool in spec.ipAddressPools; without it addresses are assigned but never answered",
			Run:  checkL2Advertisement,
		},
		{
			ID: "metallb-services", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "every LoadBalancer Service has an address",
			Hint: "kubectl describe service NAME shows MetalLB's event; usually the pool is exhausted or the requested IP is outside it",
			Run:  checkLoadBalancerServices,
		},
		{
			ID: "metallb-fixed-ips", Category: CategoryMetalLB, Severity: SeverityError,
			Name: "ArgoCD, Longhorn and Traefik on their fixed IPs",
			Hint: "set the metallb.io/loadBalancerIPs annotation of the Service to the address in spec.network.serviceIPs, and keep that address free",
			Run:  checkFixedIPs,
		},
	}
}

func checkMetalLBPool(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "metallb", metallbNamespace, kindIPAddressPool); o != nil {
		return *o
	}
	pools, err := s.customObjects(ctx, kindIPAddressPool)
	if err != nil {
		return fromError(err)
	}
	if len(pools) == 0 {
		return Failf(nil, "no IPAddressPool: LoadBalancer Services cannot get addresses")
	}
	var ranges []addrRange
	var bad []string
	for i := range pools {
		for _, a := range strs(&pools[i], "spec", "addresses") {
			r, err := parseAddrRange(a)
			if err != nil {
				bad = append(bad, fmt.Sprintf("IPAddressPool %s: %v", ref(&pools[i]), err))
				continue
			}
			ranges = append(ranges, r)
		}
	}
	if s.Spec == nil {
		if len(ranges) == 0 {
			return Failf(bad, "%d IPAddressPools but no usable address", len(pools))
		}
		return Passf("%d IPAddressPools (give --spec to compare with the spec's pool)", len(pools))
	}
	pool := s.Spec.Spec.Network.LoadBalancerPool
	want, err := parseAddrRange(pool.String())
	if err != nil {
		return Failf(nil, "spec.network.loadBalancerPool %s: %v", pool, err)
	}
	if miss := uncovered(want, ranges); len(miss) > 0 {
		return Failf(append(bad, "not covered: "+strings.Join(miss, ", ")), "the IPAddressPools do not cover the spec's pool %s", pool)
	}
	return Passf("the spec's pool %s is in %d IPAddressPools", pool, len(pools))
}

func checkL2Advertisement(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "metallb", metallbNamespace, kindIPAddressPool, kindL2Advertisement); o != nil {
		return *o
	}
	pools, err := s.customObjects(ctx, kindIPAddressPool)
	if err != nil {
		return fromError(err)
	}
	ads, err := s.customObjects(ctx, kindL2Advertisement)
	if err != nil {
		return fromError(err)
	}
	if len(ads) == 0 {
		return Failf(nil, "no L2Advertisement: no address is announced on the network")
	}
	poolNames := map[string]bool{}
	for i := range pools {
		poolNames[pools[i].GetNamespace()+"/"+pools[i].GetName()] = true
	}
	var bad []string
	covers := 0
	for i := range ads {
		ad := &ads[i]
		names := strs(ad, "spec", "ipAddressPools")
		sel, _, _ := nestedSliceLen(ad, "spec", "ipAddressPoolSelectors")
		if len(names) == 0 && sel == 0 {
			covers++ // no pool named: MetalLB announces every pool
			continue
		}
		ok := sel > 0
		for _, n := range names {
			if poolNames[ad.GetNamespace()+"/"+n] {
				ok = true
			} else {
				bad = append(bad, fmt.Sprintf("L2Advertisement %s: IPAddressPool %s does not exist", ref(ad), n))
			}
		}
		if ok {
			covers++
		}
	}
	if covers == 0 {
		return Failf(bad, "no L2Advertisement refers to an existing IPAddressPool")
	}
	if len(bad) > 0 {
		return Failf(bad, "%d L2Advertisements refer to missing IPAddressPools", len(bad))
	}
	return Passf("%d L2Advertisements", len(ads))
}

func checkLoadBalancerServices(ctx context.Context, s *Snapshot) Outcome {
	// Without MetalLB the Services' state is some other implementation's business.
	if o := installedWith(ctx, s, "metallb", metallbNamespace, kindIPAddressPool); o != nil {
		return *o
	}
	svcs, err := s.Services(ctx)
	if err != nil {
		return fromError(err)
	}
	var bad []string
	n := 0
	for i := range svcs {
		svc := &svcs[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		n++
		if len(loadBalancerIPs(svc)) == 0 {
			bad = append(bad, fmt.Sprintf("%s/%s: no address (pending)", svc.Namespace, svc.Name))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d LoadBalancer Services have no address", len(bad), n)
	}
	return Passf("%d LoadBalancer Services, each with an address", n)
}

func checkFixedIPs(ctx context.Context, s *Snapshot) Outcome {
	if s.Spec == nil {
		return Skipf("needs --spec nerv.yaml")
	}
	if o := installedWith(ctx, s, "metallb", metallbNamespace, kindIPAddressPool); o != nil {
		return *o
	}
	svcs, err := s.Services(ctx)
	if err != nil {
		return fromError(err)
	}
	var bad, good []string
	for _, ps := range platformServices {
		want := ps.ip(s)
		svc := findService(svcs, ps.namespace, ps.name)
		switch {
		case svc == nil:
			bad = append(bad, fmt.Sprintf("%s: Service %s/%s not found (want %s)", ps.component, ps.namespace, ps.name, want))
		case !contains(loadBalancerIPs(svc), want):
			got := strings.Join(loadBalancerIPs(svc), ", ")
			if got == "" {
				got = "none"
			}
			bad = append(bad, fmt.Sprintf("%s: Service %s/%s has %s, the spec says %s", ps.component, ps.namespace, ps.name, got, want))
		default:
			good = append(good, ps.component+" "+want)
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d platform Services not on their fixed IP", len(bad), len(platformServices))
	}
	return Passf("%s", strings.Join(good, ", "))
}
