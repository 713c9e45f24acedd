package durable

import (
	"os"
	"syscall"

	"github.com/atoll-hosting/atoll/internal/osfile"
)

// syncDir opens dir, fsyncs and closes it with plain system calls: an
// os.File would first try to register the folder with the network poller
// (four fcntl calls and an epoll_ctl that a folder always refuses), a cost
// paid for every blob a node stores or compresses.
func syncDir(dir string) error {
	var fd int
	err := osfile.RetryEINTR(func() (err error) {
		fd, err = syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = osfile.RetryEINTR(func() error { return syscall.Fsync(fd) })
	if cerr := syscall.Close(fd); err == nil && cerr != nil {
		return &os.PathError{Op: "close", Path: dir, Err: cerr}
	}
	if err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}
