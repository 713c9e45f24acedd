//go:build !linux

package osfile

import "os"

// CreateTemp creates a new file in dir, named prefix followed by a random
// number, opened for reading and writing (os.CreateTemp).
func CreateTemp(dir, prefix string) (*os.File, error) {
	return os.CreateTemp(dir, prefix+"*")
}

// Open opens the file at path for reading (os.Open).
func Open(path string) (*os.File, error) { return os.Open(path) }
