package atoll

import "time"

// MaxCertBytes bounds the PEM certificate chain plus the PEM key of one
// Cert.
const MaxCertBytes = 64 << 10

// Cert is a TLS certificate for one custom domain of a site, as the
// replicated state records it: every edge serves it for that domain (by
// SNI). The private key is part of the replicated state, like everything
// else in it: protect the data directories and put the Raft transport on
// TLS. The API never shows KeyPEM.
type Cert struct {
	Domain   string    `json:"domain"`
	Site     string    `json:"site"`
	CertPEM  string    `json:"cert"`      // leaf first, then intermediates
	KeyPEM   string    `json:"key"`       // the leaf's private key
	NotAfter time.Time `json:"not_after"` // the leaf's expiry, as the proposer parsed it
	Updated  time.Time `json:"updated"`
}
