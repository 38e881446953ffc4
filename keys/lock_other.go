//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package keys

import (
	"errors"
	"fmt"
	"os"
)

// lockFile is not implemented where syscall.Flock is missing: the contact
// book refuses to change rather than risk lost updates between processes.
func lockFile(path string) (unlock func(), err error) {
	return nil, fmt.Errorf("locking %q: %w", path, errors.ErrUnsupported)
}

// fileIno is not known here; size and modification time must do.
func fileIno(os.FileInfo) int64 { return 0 }
