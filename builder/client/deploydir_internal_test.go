package client

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestCreateRequest: the create request encoded from the file list decodes
// to the manifest, whatever the paths hold.
func TestCreateRequest(t *testing.T) {
	d := dirFiles{list: []localFile{
		{path: "/a.html", hash: "aa"},
		{path: "/quote\"back\\slash.html", hash: "bb"},
		{path: "/\u00e9t\u00e9/<tag>&.html", hash: "cc"},
		{path: "/ctl\x01\ttab.html", hash: "dd"},
	}}
	var got atoll.CreateDeployRequest
	if err := json.Unmarshal(d.createRequest(), &got); err != nil {
		t.Fatalf("decode %s: %v", d.createRequest(), err)
	}
	if !maps.Equal(got.Files, d.manifest()) {
		t.Errorf("decoded %v, want %v", got.Files, d.manifest())
	}
	if empty := (dirFiles{}).createRequest(); string(empty) != `{"files":{}}` {
		t.Errorf("empty list: %s", empty)
	}
}
