//go:build !linux

package durable

import "os"

// syncDir opens dir, fsyncs and closes it (a folder opened read-only:
// its close reports nothing the fsync did not).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
