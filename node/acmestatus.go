package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
)

// The state of each name's order, for `atoll cert list`, is kept in the
// replicated ACME store next to what certmagic keeps, under
// acmeStatusPrefix/<name>.json: the node working on a name (the one that
// holds its lock) records certmagic's events, so that any node can say
// where every name stands.
const acmeStatusPrefix = "atoll/status"

// acmeStatus is the recorded state of a name's order.
type acmeStatus struct {
	State     string    `json:"state"` // pending, valid, failing
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts,omitempty"` // failed attempts in a row
	NextRetry time.Time `json:"next_retry,omitzero"`
	Updated   time.Time `json:"updated"`
}

func acmeStatusKey(name string) string { return acmeStatusPrefix + "/" + name + ".json" }

// acmeEvent is certmagic's Config.OnEvent: it records the state of the
// order of a name as it changes. A failure to record is logged, never
// returned (that would abort the order).
func (n *Node) acmeEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	renewal, _ := data["renewal"].(bool)
	old, _ := n.readACMEStatus(name)
	st := acmeStatus{Updated: time.Now().UTC()}
	switch event {
	case "cert_obtaining":
		if renewal || old.State == "failing" {
			return nil // a renewal keeps "valid"; a retry keeps the failure
		}
		st.State = "pending"
	case "cert_obtained":
		st.State = "valid"
	case "cert_failed":
		err, _ := data["error"].(error)
		st.State, st.Attempts = "failing", old.Attempts+1
		if err != nil {
			st.Error = atoll.Truncate(err.Error(), 500)
		}
	default:
		return nil
	}
	b, _ := json.Marshal(st)
	if err := n.acmeStore.Store(ctx, acmeStatusKey(name), b); err != nil {
		n.log.Warn("acme: record the state of an order", "name", name, "state", st.State, "err", err)
	}
	return nil
}

// acmeRetry sees certmagic's log messages: "will retry" says when a
// failed order is tried again, which no event does. Its error reads
// "[<name>] Obtain: ..." (certmagic's obtain error), which names the order.
func (n *Node) acmeRetry(msg string, fields map[string]any) {
	if msg != "will retry" {
		return
	}
	errText, _ := fields["error"].(string)
	in, ok := fields["retrying_in"].(time.Duration)
	name, rest, found := strings.Cut(strings.TrimPrefix(errText, "["), "]")
	if !ok || !found || !strings.HasPrefix(rest, " Obtain:") || !atoll.ValidDomain(name) {
		return
	}
	st, err := n.readACMEStatus(name)
	if err != nil || st.State != "failing" {
		return
	}
	st.NextRetry = time.Now().Add(in).UTC()
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.acmeStore.Store(ctx, acmeStatusKey(name), b); err != nil {
		n.log.Warn("acme: record the next retry of an order", "name", name, "err", err)
	}
}

func (n *Node) readACMEStatus(name string) (acmeStatus, error) {
	var st acmeStatus
	b, _, err := n.store.ACMEValue(acmeStatusKey(name))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// issuedCerts is builder.Config.IssuedCerts: for each name of the site
// that ACME manages, its issued certificate and the state of its order,
// read from the replicated store (so any node answers, ACME on or off).
func (n *Node) issuedCerts(site string) ([]atoll.CertInfo, error) {
	s, err := n.store.Site(site)
	if err != nil {
		return nil, err
	}
	names := append([]string{}, s.Domains...)
	if n.cfg.ACMESiteHosts {
		names = append(names, s.Name+"."+n.cfg.Domain)
	}
	issuers, _, err := n.store.ACMEKeys("certificates", false)
	if err != nil {
		return nil, err
	}
	var out []atoll.CertInfo
	for _, name := range names {
		info := atoll.CertInfo{Domain: name, Site: site, Source: "issued"}
		found := false
		for _, dir := range issuers {
			pemBytes, mod, err := n.store.ACMEValue(dir + "/" + name + "/" + name + ".crt")
			if errors.Is(err, atoll.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			leaf, err := parseLeaf(pemBytes)
			if err != nil {
				return nil, fmt.Errorf("issued certificate of %s: %w", name, err)
			}
			if !found || leaf.NotAfter.After(info.NotAfter) {
				info.NotAfter, info.Updated, info.Names, info.Issuer = leaf.NotAfter, mod, leaf.DNSNames, leaf.Issuer.String()
				found = true
			}
		}
		st, err := n.readACMEStatus(name)
		if err != nil && !errors.Is(err, atoll.ErrNotFound) {
			return nil, err
		}
		switch {
		case st.State == "failing":
			info.State, info.Error, info.NextRetry = "failing", st.Error, st.NextRetry
			info.Attempts = st.Attempts
		case found && time.Now().After(info.NotAfter):
			info.State = "expired"
		case found:
			info.State = "valid"
		case st.State != "":
			info.State = st.State
		default:
			continue // not ordered (ACME off, or below feature level 2)
		}
		out = append(out, info)
	}
	return out, nil
}

func parseLeaf(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
