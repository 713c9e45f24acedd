package blobstore

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Regular files are opened with open(2) and wrapped with os.NewFile, which
// on Linux reads the descriptor's flags once. os.OpenFile and os.CreateTemp
// instead try to register every file with the network poller: a
// non-blocking flag set and cleared again around an epoll_ctl that a
// regular file always refuses, four fcntl calls and one failed epoll_ctl
// per file, for every temp file of every blob (bench/RESULTS.md, "Ingest:
// fewer system calls per blob"). Reads and writes of such a file block
// their thread, as they do for any regular file.

// createTemp creates a new file in dir, named prefix followed by a random
// number, opened for reading and writing, as os.CreateTemp does.
func createTemp(dir, prefix string) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		fd, err := openRetry(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), name), nil
		}
		if !errors.Is(err, unix.EEXIST) || try == 10000 {
			return nil, &os.PathError{Op: "createtemp", Path: name, Err: err}
		}
	}
}

// openRead opens the file at path for reading, as os.Open does.
func openRead(path string) (*os.File, error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openRetry is open(2), called again while a signal interrupts it (as
// os.OpenFile does).
func openRetry(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
