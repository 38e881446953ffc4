//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package keys

import (
	"errors"
	"fmt"
)

// lockFile is not implemented where syscall.Flock is missing: the contact
// book refuses to change rather than risk lost updates between processes.
func lockFile(path string) (unlock func(), err error) {
	return nil, fmt.Errorf("locking %q: %w", path, errors.ErrUnsupported)
}
