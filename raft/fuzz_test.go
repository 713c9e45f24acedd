package raft

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// encodes again to a canonical form that decodes to the same command.
// Seeds: every command type (f.Add) and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, c := range allCommands {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("\x01\x05{\"deploy\":\"d\",\"files\":[{\"path\":\"/a\",\"hash\":\"\"},null]}"))
	f.Add([]byte("\x01\x01{\"created\":\"0000-01-01T00:00:00+01:00\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := Decode(in)
		if err != nil {
			if cmd != nil {
				t.Fatalf("Decode returned %#v with error %v", cmd, err)
			}
			return
		}
		b1, err := Encode(cmd)
		if err != nil {
			t.Fatalf("Decode accepted %q as %#v, which does not encode: %v", in, cmd, err)
		}
		again, err := Decode(b1)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))) failed: %v\nencoded: %q", err, b1)
		}
		b2, err := Encode(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%q\n%q", b1, b2)
		}
	})
}
