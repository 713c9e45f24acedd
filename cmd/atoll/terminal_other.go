//go:build !linux

package main

import "os"

// fileIsTerminal reports whether f is a character device, which a
// terminal is (as are others, such as /dev/null).
func fileIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
