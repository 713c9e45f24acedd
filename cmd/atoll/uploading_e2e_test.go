package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSiteMaxUploadingClusterWideEndToEnd runs three core nodes and sends
// a burst of deploy creates for one site through all of them at once,
// more than its --max-uploading through each: across the cluster, at most
// the limit are created (the FSM checks it in log order), the others get
// the 429 that names the limit, and the site ends with at most the limit
// of deploys uploading.
func TestSiteMaxUploadingClusterWideEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	members := startCores(t, 3)
	const limit, perNode = 3, 6
	members[0].MustCLI("site", "create", "blog")
	members[0].MustCLI("site", "update", "blog", "--max-uploading", "3")
	// The FSM checks the limit from feature level 2, which the leader
	// raises once it has seen every node's binary.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, st := members[0].API("GET", "/v1/status", members[0].Token(), "", nil)
		if level, _ := st["feature_level"].(float64); level >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not reach feature level 2 within 30s")
		}
	}

	var mu sync.Mutex
	statuses := map[int]int{}
	var msgs []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range members {
		for i := range perNode {
			wg.Go(func() {
				<-start
				// Blobs nobody holds: each deploy stays uploading.
				status, body := s.API("POST", "/v1/sites/blog/deploys", s.Token(), "application/json",
					strings.NewReader(manifest(s.ID+string(rune('a'+i)), 1)))
				mu.Lock()
				defer mu.Unlock()
				statuses[status]++
				if msg, _ := body["error"].(string); status == http.StatusTooManyRequests {
					msgs = append(msgs, msg)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	t.Logf("%d creates through 3 nodes at once: %v", 3*perNode, statuses)
	if statuses[http.StatusCreated] > limit || statuses[http.StatusCreated]+statuses[http.StatusTooManyRequests] != 3*perNode {
		t.Errorf("answers %v, want at most %d created and the rest 429", statuses, limit)
	}
	for _, msg := range msgs {
		if !strings.Contains(msg, "--site-max-uploading") || !strings.Contains(msg, "3 deploys in progress") {
			t.Errorf("429 message %q, want the limit and the flag named", msg)
			break
		}
	}
	_, body := members[1].API("GET", "/v1/sites/blog/deploys", members[1].Token(), "", nil)
	uploading := 0
	list, _ := body["deploys"].([]any)
	for _, d := range list {
		if m, _ := d.(map[string]any); m["state"] == "uploading" {
			uploading++
		}
	}
	if uploading > limit || len(list) != statuses[http.StatusCreated] {
		t.Errorf("site blog has %d deploys, %d uploading; want the %d created, at most %d uploading", len(list), uploading, statuses[http.StatusCreated], limit)
	}
}
