package raft

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// CertExpiries returns every uploaded certificate of the cluster, ordered
// by domain, without its PEM nor key: one walk of the certificates table,
// whose size grows with the custom domains that have one, not with the
// sites. The metrics refresh reads it instead of Certs per site.
func (f *FSM) CertExpiries() ([]atoll.Cert, error) {
	var out []atoll.Cert
	err := f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var c struct {
				Site     string    `json:"site"`
				NotAfter time.Time `json:"not_after"`
			}
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode certificate %q: %w", k, err)
			}
			out = append(out, atoll.Cert{Domain: string(k), Site: c.Site, NotAfter: c.NotAfter})
			return nil
		})
	})
	return out, err
}
