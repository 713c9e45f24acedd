package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

// A crash in the middle of rewriting one of the data dir's small files
// (node id, admin token, scrub progress) leaves a temp file next to it; the
// restart removes it and keeps the file it was to replace.
func TestRestartRemovesInterruptedWrites(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	m := c.Members[0]
	c.Kill(m)
	dir := m.Cfg.DataDir
	leftovers := []string{".scrub.json.tmp2718281", ".token.tmp31415"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	c.Restart(m)
	for _, name := range leftovers {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after the restart (%v)", name, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "node-id")); err != nil || string(got) != string(id) {
		t.Errorf("node-id after the restart: %q %v, want %q", got, err, id)
	}
}
