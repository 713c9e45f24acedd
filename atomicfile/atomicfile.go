// Package atomicfile writes the small files of a data directory (node-id,
// token, scrub.json, certificates) so that a crash leaves either the old
// file or the new one, never a mix: temp file, fsync, rename, fsync of the
// directory.
//
// It owns the naming of its temp files (".NAME.tmp*" beside NAME), so that
// RemoveLeftovers finds what a crash left behind. It must never be used for
// large or streamed data: the whole content is in memory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces the file at path with data, mode perm, atomically and
// durably. A crash can leave the temp file, which RemoveLeftovers finds by
// its name.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveLeftovers removes the temp files of Write calls in dir that a crash
// cut short (".token.tmp123"): the file they were to replace is intact. The
// caller promises that nothing else in dir is named so.
func RemoveLeftovers(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove a leftover of an interrupted write: %w", err)
		}
	}
	return nil
}
