package osfile

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// CreateTemp creates a new file in dir, named prefix followed by a random
// number, opened for reading and writing, as os.CreateTemp does.
func CreateTemp(dir, prefix string) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		fd, err := openRetry(name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), name), nil
		}
		if !errors.Is(err, syscall.EEXIST) || try == 10000 {
			return nil, &os.PathError{Op: "createtemp", Path: name, Err: err}
		}
	}
}

// Open opens the file at path for reading, as os.Open does.
func Open(path string) (*os.File, error) {
	fd, err := openRetry(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openRetry is open(2), called again while a signal interrupts it (as
// os.OpenFile does).
func openRetry(path string, flags int, perm uint32) (fd int, err error) {
	err = RetryEINTR(func() error {
		fd, err = syscall.Open(path, flags, perm)
		return err
	})
	return fd, err
}

// RetryEINTR calls fn again while a signal interrupts it (EINTR), as the
// os package does around its own system calls.
func RetryEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}
