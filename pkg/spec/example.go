package spec

import _ "embed"

//go:embed example.yaml
var example []byte

// Example returns the seed's site as a commented nerv.yaml: one server, misato, on
// 192.168.1.0/24 with the LoadBalancer pool .110-.115. `kubectl nerv init` writes it, and the
// repository's examples/nerv.yaml is this file (a test keeps them equal).
func Example() []byte { return append([]byte(nil), example...) }
