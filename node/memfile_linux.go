package node

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memFile returns an open file in memory (memfd_create(2)) holding b, at
// offset 0, for the edge to serve like a blob file (sendfile, ranges). It
// is freed when the caller closes it.
func memFile(b []byte) (*os.File, int64, error) {
	fd, err := unix.MemfdCreate("atoll-pass-through", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, 0, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "atoll-pass-through")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("fill memfd: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("rewind memfd: %w", err)
	}
	return f, int64(len(b)), nil
}
