package nixos

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
)

// fileSystemsDecl matches a fileSystems or swapDevices definition: nixos-generate-config
// writes them unless given --no-filesystems, and they would clash with disk-config.nix (disko).
var fileSystemsDecl = regexp.MustCompile(`(?m)^\s*(fileSystems|swapDevices)\b`)

// WriteHardware stores a machine's hardware configuration for node under dir (the directory
// that holds nixos/), atomically. content is the output of
// `nixos-generate-config --no-filesystems --show-hardware-config` on the machine; Write keeps
// it from then on. It refuses NERV's own placeholder and a configuration that declares file
// systems, which disko owns.
func WriteHardware(dir, node string, content []byte) error {
	full := filepath.Join(dir, filepath.FromSlash(HardwarePath(node)))
	switch {
	case len(bytes.TrimSpace(content)) == 0:
		return fmt.Errorf("hardware configuration of %s is empty", node)
	case IsPlaceholderHardware(content):
		return fmt.Errorf("hardware configuration of %s is NERV's placeholder, not the machine's", node)
	case fileSystemsDecl.Match(content):
		return fmt.Errorf("hardware configuration of %s declares file systems, which disk-config.nix (disko) owns: capture it with nixos-generate-config --no-filesystems --show-hardware-config", node)
	}
	if err := writeAtomic(full, content); err != nil {
		return fmt.Errorf("writing %s: %w", full, err)
	}
	return nil
}
