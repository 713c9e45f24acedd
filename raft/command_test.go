package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

// allCommands has one populated command of every type.
var allCommands = []Command{
	CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Retain: 3, Created: t0},
	UpdateSite{Name: "blog", Domains: []string{"www.example.com"}, Retain: 5, MaxBytes: new(int64(1 << 30)), MaxUploading: new(4), MaxFiles: new(0), HTTPSOnly: new(true), HSTS: new(false)},
	DeleteSite{Name: "blog"},
	CreateDeploy{ID: "abc123", Site: "blog", Files: 2, Created: t0, Message: "m", MaxUploading: 3, Base: "base1", Remove: []string{"/a.html", "/b.html"}},
	AddFiles{Deploy: "abc123", Files: []atoll.File{{Path: "/index.html", Hash: hashOf("a")}}},
	MarkReady{Deploy: "abc123", Bytes: 42},
	Publish{Deploy: "abc123", At: t0},
	FailDeploy{Deploy: "abc123", Reason: "blob missing"},
	PutNode{Node: atoll.Node{ID: "n1", Role: atoll.RoleCore, RaftAddr: "10.0.0.1:7000", State: atoll.NodeActive, Joined: t0}},
	RemoveNode{ID: "n1"},
	SetAdminToken{Hash: hashOf("secret")},
	SetReplicas{N: 3},
	CreateToken{ID: "tok1", Site: "blog", Name: "ci", Hash: hashOf("secret"), Created: t0},
	RevokeToken{ID: "tok1"},
	PutCert{Site: "blog", Domain: "blog.example.com", CertPEM: "-----BEGIN CERTIFICATE-----", KeyPEM: "-----BEGIN EC PRIVATE KEY-----", NotAfter: t0, Updated: t0},
	DeleteCert{Site: "blog", Domain: "blog.example.com"},
	PutACME{Key: "certificates/ca/blog.example.com/blog.example.com.crt", Value: []byte("-----BEGIN CERTIFICATE-----"), Modified: t0},
	DeleteACME{Key: "certificates/ca/blog.example.com"},
	LockACME{Name: "issue_cert_blog.example.com", Holder: "n1", At: t0, TTL: time.Minute},
	UnlockACME{Name: "issue_cert_blog.example.com", Holder: "n1"},
	LockSite{Name: "blog", Locked: true},
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, cmd := range allCommands {
		t.Run(reflect.TypeOf(cmd).Name(), func(t *testing.T) {
			b, err := Encode(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := b[0], byte(commandVersion); got != want {
				t.Errorf("version byte = %d, want %d", got, want)
			}
			if got, want := CommandType(b[1]), cmd.Type(); got != want {
				t.Errorf("type byte = %d, want %d", got, want)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, cmd) {
				t.Errorf("Decode(Encode(cmd)) = %#v, want %#v", got, cmd)
			}
		})
	}
}

func TestEncodePointer(t *testing.T) {
	a, err := Encode(&DeleteSite{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Encode(DeleteSite{Name: "x"})
	if !bytes.Equal(a, b) {
		t.Errorf("pointer encodes as %q, value as %q", a, b)
	}
	if _, err := Encode((*DeleteSite)(nil)); !errors.Is(err, atoll.ErrInvalid) {
		t.Errorf("Encode(typed nil) = %v, want ErrInvalid", err)
	}
	if _, err := Encode(nil); !errors.Is(err, atoll.ErrInvalid) {
		t.Errorf("Encode(nil) = %v, want ErrInvalid", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, atoll.ErrInvalid},
		{"one byte", []byte{1}, atoll.ErrInvalid},
		{"version 0", []byte("\x00\x01{}"), ErrUnknownCommand},
		{"version 2", []byte("\x02\x01{}"), ErrUnknownCommand},
		{"type 0", []byte("\x01\x00{}"), ErrUnknownCommand},
		{"type 200", []byte("\x01\xc8{}"), ErrUnknownCommand}, // not yet a command
		{"type 255", []byte("\x01\xff{}"), ErrUnknownCommand},
		{"no body", []byte("\x01\x01"), atoll.ErrInvalid},
		{"not json", []byte("\x01\x01hello"), atoll.ErrInvalid},
		{"trailing garbage", []byte("\x01\x03{\"name\":\"a\"}x"), atoll.ErrInvalid},
		{"wrong field type", []byte("\x01\x04{\"files\":\"many\"}"), atoll.ErrInvalid},
		{"array body", []byte("\x01\x03[]"), atoll.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decode(%q) = %v, %v; want error wrapping %v", tt.in, cmd, err, tt.want)
			}
		})
	}
}

func TestBatchFiles(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		if got := BatchFiles("d1", nil); got != nil {
			t.Errorf("BatchFiles(nil) = %v, want nil", got)
		}
	})
	t.Run("small manifest is one batch", func(t *testing.T) {
		files := manifest(10)
		got := BatchFiles("d1", files)
		if len(got) != 1 || !reflect.DeepEqual(got[0].Files, files) || got[0].Deploy != "d1" {
			t.Errorf("BatchFiles = %+v, want one batch with all files", got)
		}
	})
	t.Run("100k files", func(t *testing.T) {
		files := manifest100k()
		batches := BatchFiles("d1", files)
		if len(batches) < 2 {
			t.Fatalf("%d batches, want several", len(batches))
		}
		var all []atoll.File
		for i, b := range batches {
			enc, err := Encode(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) > MaxBatchBytes {
				t.Errorf("batch %d encodes to %d bytes, limit %d", i, len(enc), MaxBatchBytes)
			}
			// Greedy: adding the next file would have crossed the limit.
			if i < len(batches)-1 {
				next, _ := json.Marshal(batches[i+1].Files[0])
				if len(enc)+1+len(next) <= MaxBatchBytes {
					t.Errorf("batch %d (%d files) had room for one more", i, len(b.Files))
				}
			}
			all = append(all, b.Files...)
		}
		if !reflect.DeepEqual(all, files) {
			t.Error("batches do not add up to the manifest in order")
		}
		t.Logf("100k files: %d batches", len(batches))
	})
	t.Run("size estimate is exact", func(t *testing.T) {
		for _, p := range []string{"/a", "/a b~", "/<&>", "/\"q\"", "/\\", "/caf\u00e9", "/\u2028", "/\xff", "/\x01\x7f"} {
			f := atoll.File{Path: p, Hash: hashOf(p)}
			b, _ := json.Marshal(f)
			if got, want := fileJSONLen(f), len(b); got != want {
				t.Errorf("fileJSONLen(%q) = %d, want %d", p, got, want)
			}
		}
	})
	t.Run("escaped characters count", func(t *testing.T) {
		// '<' and '&' become \u003c and \u0026 in JSON: six bytes each.
		var files []atoll.File
		for i := range 3000 {
			p := fmt.Sprintf("/<&>/%c/%05d.html", 'a'+i%26, i)
			files = append(files, atoll.File{Path: p, Hash: hashOf(p)})
		}
		for i, b := range BatchFiles("d1", files) {
			if enc, _ := Encode(b); len(enc) > MaxBatchBytes {
				t.Errorf("batch %d encodes to %d bytes", i, len(enc))
			}
		}
	})
}
