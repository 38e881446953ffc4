//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package keys

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory flock on path (created 0600 if
// missing), for one read-modify-write. The lock belongs to the open file,
// so two Books in one process exclude each other as two processes do. The
// returned func releases it. The lock file is never removed: removing it
// would let two writers lock two different files.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %q: %w", path, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// fileIno is the file's inode number.
func fileIno(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Ino)
	}
	return 0
}
