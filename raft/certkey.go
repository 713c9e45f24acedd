package raft

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Private keys of custom-domain certificates are sealed before they enter
// the log, so that neither the Raft log, the state nor a snapshot holds
// one in the clear. The sealing key is derived from the cluster key (HKDF
// with SHA-256, info certKeyInfo), which every node of a cluster shares
// and none stores in its data dir; the cipher is AES-256-GCM with a random
// nonce and the domain as additional data, so a sealed key only opens for
// the domain it was sealed for.
//
// A sealed key is sealedKeyPrefix and the base64 (standard, padded) of
// nonce || ciphertext. A record whose key is PEM (written before sealing,
// or by a node without a cluster key) stays as it is and is served as it
// is; the next PUT of that certificate seals it.

const (
	sealedKeyPrefix = "atoll-sealed-v1:"
	certKeyInfo     = "atoll certificate private keys v1"
)

// ErrSealedKey means a sealed private key does not open: the node has no
// cluster key, or not the one the key was sealed with.
var ErrSealedKey = errors.New("sealed certificate key does not open")

// IsSealedKey reports whether a recorded private key is sealed.
func IsSealedKey(key string) bool { return strings.HasPrefix(key, sealedKeyPrefix) }

// SealCertKey seals the PEM private key of domain's certificate with a key
// derived from clusterKey, which must not be empty.
func SealCertKey(clusterKey, domain, keyPEM string) (string, error) {
	aead, err := certKeyAEAD(clusterKey)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(keyPEM)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal certificate key: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(keyPEM), []byte(domain))
	return sealedKeyPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// OpenCertKey returns the PEM private key of domain's certificate from
// what the state records: a sealed key opened with clusterKey, or a PEM
// key as it is. A sealed key that does not open is an error wrapping
// ErrSealedKey.
func OpenCertKey(clusterKey, domain, key string) (string, error) {
	if !IsSealedKey(key) {
		return key, nil
	}
	if clusterKey == "" {
		return "", fmt.Errorf("%w: the key of %q is sealed and this node has no cluster key", ErrSealedKey, domain)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, sealedKeyPrefix))
	if err != nil {
		return "", fmt.Errorf("%w: the key of %q: %v", ErrSealedKey, domain, err)
	}
	aead, err := certKeyAEAD(clusterKey)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", fmt.Errorf("%w: the key of %q is truncated", ErrSealedKey, domain)
	}
	pem, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(domain))
	if err != nil {
		return "", fmt.Errorf("%w: the key of %q was sealed with another cluster key (put the certificate again)", ErrSealedKey, domain)
	}
	return string(pem), nil
}

func certKeyAEAD(clusterKey string) (cipher.AEAD, error) {
	if clusterKey == "" {
		return nil, errors.New("seal certificate key: no cluster key")
	}
	key, err := hkdf.Key(sha256.New, []byte(clusterKey), nil, certKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive certificate sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
