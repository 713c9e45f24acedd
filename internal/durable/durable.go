// Package durable writes small files the crash-safe way every part of Atoll
// needs: write a temporary file, fsync it, rename it over the target, fsync
// the folder. A crash at any point leaves the old content or the new one,
// never a mix; at worst a temporary file is left behind, whose name (see
// WriteFile) lets its owner find and remove it at the next start.
//
// It depends on the standard library alone (the Go client uses it) and
// never removes anything but its own temporary file.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, mode perm. The temporary file is
// "."+base+".tmp*" next to path (same folder, hence same file system).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileVia(filepath.Dir(path), "."+filepath.Base(path)+".tmp*", path, data, perm)
}

// WriteFileVia is WriteFile with the temporary file made in tmpDir, named
// by pattern (os.CreateTemp's); tmpDir must be on path's file system, so
// that the rename is atomic.
func WriteFileVia(tmpDir, pattern, path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(tmpDir, pattern)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := Commit(f, path); err != nil {
		return err
	}
	return nil
}

// Commit makes the written temporary file f durable as path: fsync, close,
// rename over path, fsync of path's folder. f is closed in every case; on
// error path is unchanged (or, after a rename whose folder sync failed,
// replaced but maybe not durably) and f's file may be left for the caller
// to remove.
func Commit(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a folder, making the entries created, renamed or removed
// in it durable.
func SyncDir(dir string) error {
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
