package client

import (
	"io/fs"
	"syscall"
)

const stampsAvailable = true

func inodeAndCtime(fi fs.FileInfo) (ino uint64, ctimeNs int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Ino, st.Ctim.Sec*1e9 + st.Ctim.Nsec, true
}
