//go:build !linux

package blobstore

import "os"

// createTemp creates a new file in dir, named prefix followed by a random
// number, opened for reading and writing (os.CreateTemp).
func createTemp(dir, prefix string) (*os.File, error) {
	return os.CreateTemp(dir, prefix+"*")
}

// openRead opens the file at path for reading (os.Open).
func openRead(path string) (*os.File, error) { return os.Open(path) }
