//go:build !linux

package node

import (
	"errors"
	"os"
)

// memFile is Linux only (memfd_create); elsewhere a node whose disk is
// full serves only the small files it holds in memory.
func memFile([]byte) (*os.File, int64, error) {
	return nil, 0, errors.New("serving a blob from memory needs Linux")
}
