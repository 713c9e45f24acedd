package node

import (
	"fmt"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// TestCompressingOwner: the owner that compresses a blob for the cluster
// is its first owner in placement order, skipping those known down; none
// when every owner is down. Every node computes the same from the same
// node table.
func TestCompressingOwner(t *testing.T) {
	var nodes []atoll.Node
	for i := range 5 {
		nodes = append(nodes, atoll.Node{ID: fmt.Sprintf("core%d", i+1), Role: atoll.RoleCore, State: atoll.NodeActive})
	}
	p := placement.New(nodes, 3)
	hash := fmt.Sprintf("%064x", 42)
	owners := p.Owners(hash)
	downSet := func(ids ...string) func(atoll.Node) bool {
		return func(n atoll.Node) bool {
			for _, id := range ids {
				if n.ID == id {
					return true
				}
			}
			return false
		}
	}
	tests := []struct {
		name   string
		down   []string
		want   string
		wantOK bool
	}{
		{"all up", nil, owners[0].ID, true},
		{"first owner down", []string{owners[0].ID}, owners[1].ID, true},
		{"a non-first owner down", []string{owners[1].ID}, owners[0].ID, true},
		{"two first owners down", []string{owners[0].ID, owners[1].ID}, owners[2].ID, true},
		{"every owner down", []string{owners[0].ID, owners[1].ID, owners[2].ID}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := compressingOwner(p, hash, downSet(tt.down...))
			if got.ID != tt.want || ok != tt.wantOK {
				t.Errorf("compressingOwner = %q, %v; want %q, %v", got.ID, ok, tt.want, tt.wantOK)
			}
		})
	}
}
