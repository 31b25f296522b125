// Package atomicfile writes files so that a reader (or a restarted process)
// sees either the old content or the new, never a torn mix: the data goes to
// a temporary file in the same directory, is fsynced, renamed over the
// target, and the directory is fsynced so the rename itself survives a crash.
// It also makes new directory entries durable (MkdirAll, SyncDir) for files
// that are appended to rather than replaced. It is not a database: it does
// not order writes to different files, and a crash may leave a stray
// temporary, which the next Write does not reuse.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, atomically and durably, with the given mode.
func Write(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so that the entries created, renamed or
// removed in it survive a crash; fsyncing a file does not do that.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// MkdirAll is os.MkdirAll that also fsyncs the parent of every directory it
// creates, so that a file later made durable inside it is not lost with a
// directory entry that never reached the disk.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("creating %s: it exists and is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if st, serr := os.Stat(dir); errors.Is(err, fs.ErrExist) && serr == nil && st.IsDir() {
			return nil // made meanwhile by someone else, who syncs it
		}
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return SyncDir(parent)
}
