// Package doctor checks that a NERV cluster and its platform services are healthy, and says
// why not. Checks are data (Check: an ID that is also the docs anchor, a category, a
// severity, a hint and a timeout) over a shared Snapshot that lists each kind of object at
// most once per run, lazily and concurrently: no check makes a request per object.
//
// Other packages reuse the checks, e.g. a join preflight:
//
//	rep, err := doctor.Run(ctx, doctor.Options{Config: cfg, Categories: []string{doctor.CategoryKubernetes}})
//	if err != nil { /* the cluster cannot be reached */ }
//	if rep.Failed() { /* rep.Failures() lists what is wrong, each with a hint */ }
//
// Rendering (RenderTable, and the Report's JSON/YAML form) is separate from checking.
package doctor
