package main

import (
	"os"
	"testing"
)

// TestIsTerminal: deploy draws its progress line on a terminal only, not
// into /dev/null (a character device) or a pipe.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, f := range map[string]*os.File{"/dev/null": null, "a pipe": w} {
		if isTerminal(f) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
	if isTerminal(&struct{}{}) {
		t.Error("a value that is no file taken for a terminal")
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Logf("no pseudo-terminal to check the positive case: %v", err)
		return
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("a pseudo-terminal not taken for a terminal")
	}
}
