package raft

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// countChunk bounds the deploy records one read transaction of
// DeployCounts decodes.
const countChunk = 1 << 14

// DeployCounts returns how many retained deploys are in each state. It
// reads the deploys table directly, decoding only each record's state, in
// short read transactions of at most countChunk records: what the metrics
// refresh needs, without a Deploys read (and a full decode) per site.
func (f *FSM) DeployCounts() (map[atoll.DeployState]int, error) {
	out := map[atoll.DeployState]int{}
	var after []byte
	for {
		var done bool
		err := f.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketDeploys).Cursor()
			k, v := seekAfter(c, after)
			for n := 0; k != nil && n < countChunk; k, v = c.Next() {
				var d struct {
					State atoll.DeployState `json:"state"`
				}
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("decode deploy %q: %w", k, err)
				}
				out[d.State]++
				after = bytes.Clone(k)
				n++
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return nil, err
		}
		if done {
			return out, nil
		}
	}
}
