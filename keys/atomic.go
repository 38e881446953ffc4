package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File modes of everything this package creates.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// writeTemp writes the new contents into the temporary file. It is a
// variable only so that a test can make the write fail.
var writeTemp = func(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// writeFileAtomic makes path hold exactly data, or leaves it as it was.
//
// The data goes to a fresh temporary file in the same directory, created
// with O_EXCL and mode 0600, and is fsynced before it is published. With
// replace, the temporary file is renamed over path. Without it, it is
// hard-linked to path, which fails if path exists (ErrExists), so an
// existing file is never overwritten even by a racing writer. The directory
// is fsynced afterwards, and created with mode 0700 if missing.
//
// A crash can leave a temporary file named .<name>.tmp-<random> behind; it is
// 0600 and never read.
func writeFileAtomic(path string, data []byte, replace bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	f, tmp, err := createTemp(dir, base)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		// After a rename the name is gone and this fails harmlessly; after a
		// link or a failure it removes the temporary name.
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}()
	// The umask may have taken bits away, never added them; set the mode
	// exactly anyway.
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	if err := writeTemp(f, data); err != nil {
		return fmt.Errorf("writing %q: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %q: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("closing %q: %w", tmp, err)
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%q: %w", path, ErrExists)
		}
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// createTemp creates a new empty file next to base in dir with O_EXCL.
func createTemp(dir, base string) (*os.File, string, error) {
	for range 10 {
		name := filepath.Join(dir, "."+base+".tmp-"+rand.Text()[:12])
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("creating a temporary file in %q: too many collisions", dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %q: %w", dir, err)
	}
	return nil
}

// readFileLimited reads a regular file of at most limit bytes. It checks the
// size before reading, and refuses the file with an *InsecurePermissionsError
// if any of the permission bits in forbidden are set (except on Windows). Errors other than the
// permission error wrap ErrCorrupt or come from the file system
// (fs.ErrNotExist when there is no file).
func readFileLimited(path string, limit int64, forbidden fs.FileMode) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	// Windows has no such permission bits (os reports 0666 or 0444).
	if runtime.GOOS != "windows" && fi.Mode().Perm()&forbidden != 0 {
		return nil, &InsecurePermissionsError{Path: path, Mode: fi.Mode().Perm()}
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrCorrupt, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than the limit of %d bytes", ErrCorrupt, limit)
	}
	return data, nil
}
