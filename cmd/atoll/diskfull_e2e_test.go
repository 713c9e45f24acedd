package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// tempFiles lists what writes in progress leave under the data dir: files
// in the blob store's and the upload spool's temp folders, and anything
// named like a temp file elsewhere.
func tempFiles(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		inTmp := strings.HasPrefix(rel, "tmp/") || strings.HasPrefix(rel, "blobs/temp/")
		tempName := strings.HasPrefix(name, "put-") || strings.HasPrefix(name, "import-") ||
			strings.HasPrefix(name, "variant-") || strings.HasPrefix(name, "atoll-upload-") || strings.Contains(name, ".tmp")
		if !d.IsDir() && (inTmp || tempName) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putBlob uploads content through the API and returns the status and
// error message.
func putBlob(t *testing.T, s *atolltest.Server, content []byte) (int, string) {
	t.Helper()
	status, body := s.API("PUT", "/v1/blobs/"+atolltest.SHA256Hex(content), s.Token(), "", bytes.NewReader(content))
	msg, _ := body["error"].(string)
	return status, msg
}

// TestDiskFullEndToEnd runs a node whose free space is below its reserve
// (--min-free larger than any disk): uploads fail with 507 and a one-line
// error about disk space, nothing half-written stays, the published site
// is still served; with a normal reserve the same deploy goes through.
func TestDiskFullEndToEnd(t *testing.T) {
	s := newServer(t)
	s.Start()
	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>v1</h1>"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")

	s.Kill(syscall.SIGTERM)
	s.Flags = []string{"--min-free", "1048576TiB"}
	s.Start()
	big := make([]byte, 300<<10)
	rand.Read(big)
	writeTree(t, site, map[string]string{"index.html": "<h1>v2</h1>", "photo.bin": string(big)})
	if errOut := s.FailCLI("deploy", site, "--site", "blog"); !strings.Contains(errOut, "disk space") {
		t.Errorf("deploy on a full node: stderr %q, want a line about disk space", errOut)
	}
	if status, msg := putBlob(t, s, big); status != http.StatusInsufficientStorage || !strings.Contains(msg, "disk space") {
		t.Errorf("PUT blob on a full node: %d %q, want 507 about disk space", status, msg)
	}
	status, body := s.API("POST", "/v1/sites/blog/deploys?publish=true", s.Token(), "application/x-tar",
		bytes.NewReader(atolltest.Tar(map[string]string{"index.html": "<h1>from tar</h1>", "photo.bin": string(big)})))
	if msg, _ := body["error"].(string); status != http.StatusInsufficientStorage || !strings.Contains(msg, "disk space") {
		t.Errorf("tar upload on a full node: %d %v, want 507 about disk space", status, body)
	}
	if left := tempFiles(t, s.Data); len(left) != 0 {
		t.Errorf("temp files left after refused uploads: %v", left)
	}
	if resp, got := s.Get("GET", "blog.localhost", "/"); resp.StatusCode != 200 || got != "<h1>v1</h1>" {
		t.Errorf("published site on a full node: %d %q, want v1", resp.StatusCode, got)
	}
	if resp, _ := s.Get("GET", "blog.localhost", "/photo.bin"); resp.StatusCode != 404 {
		t.Errorf("a refused file is served: %d", resp.StatusCode)
	}

	// Space returns: the same deploy succeeds.
	s.Kill(syscall.SIGTERM)
	s.Flags = nil
	s.Start()
	s.MustCLI("deploy", site, "--site", "blog")
	if _, got := s.Get("GET", "blog.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("after recovery: got %q, want v2", got)
	}
	if _, got := s.Get("GET", "blog.localhost", "/photo.bin"); got != string(big) {
		t.Errorf("after recovery: photo.bin is %d bytes, want the uploaded %d", len(got), len(big))
	}
}

// TestRealDiskFullEndToEnd puts the blob store on a small tmpfs and fills
// it: the upload fails with ENOSPC turned into 507, the temp files go, the
// site keeps serving, and once the filler is removed the deploy succeeds
// with no restart. Needs root to mount; skipped otherwise.
func TestRealDiskFullEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	s := newServer(t)
	blobs := filepath.Join(s.Data, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", blobs).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", blobs).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", blobs, err, out)
		}
	})
	s.Flags = []string{"--min-free", "0"}
	s.Start() // after the umount cleanup: it is killed first

	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>v1</h1>"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")

	var st syscall.Statfs_t
	if err := syscall.Statfs(blobs, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(blobs, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-(256<<10)), 0o600); err != nil {
		t.Fatalf("fill the tmpfs: %v", err)
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	writeTree(t, site, map[string]string{"index.html": "<h1>v2</h1>", "photo.bin": string(big)})
	if errOut := s.FailCLI("deploy", site, "--site", "blog"); !strings.Contains(errOut, "disk space") {
		t.Errorf("deploy on a full disk: stderr %q, want a line about disk space", errOut)
	}
	if status, msg := putBlob(t, s, big); status != http.StatusInsufficientStorage || !strings.Contains(msg, "no space left") {
		t.Errorf("PUT blob on a full disk: %d %q, want 507 saying no space is left", status, msg)
	}
	if left := tempFiles(t, s.Data); len(left) != 0 {
		t.Errorf("temp files left on the full disk: %v", left)
	}
	if _, got := s.Get("GET", "blog.localhost", "/"); got != "<h1>v1</h1>" {
		t.Errorf("published site on a full disk: got %q, want v1", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.MustCLI("deploy", site, "--site", "blog")
	if _, got := s.Get("GET", "blog.localhost", "/photo.bin"); got != string(big) {
		t.Errorf("once space returned: photo.bin is %d bytes, want %d", len(got), len(big))
	}
}

// mountTmpfs mounts a tmpfs of size on dir for the test (root only: it
// skips otherwise). Call it before the server starts, so that the server
// is killed before the umount.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// freeOn is statfs's f_bavail of dir in bytes.
func freeOn(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// sendTar starts a tar upload on a raw connection: the headers (with
// Content-Length announced, or chunked when announced is negative), then
// send bytes of body, then nothing (the stall). It returns the status line
// the node answered while the body is stalled.
func sendTar(t *testing.T, s *atolltest.Server, announced, send int64) string {
	t.Helper()
	conn, err := net.Dial("tcp", s.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	framing := "Transfer-Encoding: chunked"
	if announced >= 0 {
		framing = fmt.Sprintf("Content-Length: %d", announced)
	}
	fmt.Fprintf(conn, "POST /v1/sites/blog/deploys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-tar\r\n%s\r\n\r\n",
		s.Token(), framing)
	go func() { // the node may stop reading: write apart from the answer
		chunk := make([]byte, 256<<10)
		for sent := int64(0); sent < send; {
			n := min(int64(len(chunk)), send-sent)
			var err error
			if announced < 0 {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", n, chunk[:n])
			} else {
				_, err = conn.Write(chunk[:n])
			}
			if err != nil {
				return
			}
			sent += n
		}
	}()
	conn.SetReadDeadline(time.Now().Add(90 * time.Second)) // ends the test on a hang only
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("tar upload of %d bytes then a stall: no answer: %v", send, err)
	}
	return strings.TrimSpace(line)
}

// TestTarSpoolRoomEndToEnd is the deploy token that fills the disk: the
// data dir is a 64 MiB tmpfs, the node keeps 16 MiB free, and tar uploads
// try to take the rest and stall there. Each is refused with 507 before
// it eats into the reserve (an announced size at once, a chunked body as
// it streams), the spool file goes, and the node's metadata writes and
// its sites carry on.
func TestTarSpoolRoomEndToEnd(t *testing.T) {
	s := newServer(t)
	mountTmpfs(t, s.Data, "64m")
	s.Flags = []string{"--min-free", "16MiB", "--api-read-timeout", "2s"}
	s.Start()
	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>v1</h1>"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")

	free := freeOn(t, s.Data)
	if line := sendTar(t, s, free+(1<<20), 1<<20); !strings.Contains(line, " 507 ") {
		t.Errorf("tar upload announcing %d bytes with %d free: %q, want 507 at once", free+(1<<20), free, line)
	}
	if line := sendTar(t, s, -1, free-(4<<10)); !strings.Contains(line, " 507 ") {
		t.Errorf("chunked tar upload of free minus 4 KiB (%d bytes), stalled: %q, want 507 before the reserve", free-(4<<10), line)
	}
	if got := freeOn(t, s.Data); got < 16<<20 {
		t.Errorf("%d bytes free after the refused uploads, want at least the 16 MiB reserve", got)
	}
	if left := tempFiles(t, s.Data); len(left) != 0 {
		t.Errorf("spool files left after refused uploads: %v", left)
	}
	s.MustCLI("site", "create", "other") // a Raft write finds room
	s.WaitFor("/readyz")
	if _, got := s.Get("GET", "blog.localhost", "/"); got != "<h1>v1</h1>" {
		t.Errorf("published site after the refused uploads: got %q, want v1", got)
	}
}

// allocated is the disk space the file name under dir takes (its blocks).
func allocated(t *testing.T, dir, name string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			var st syscall.Stat_t
			if syscall.Stat(p, &st) == nil {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// manifest is a deploy request of n files with made-up hashes, tagged so
// that two manifests share no entry.
func manifest(tag string, n int) string {
	var b strings.Builder
	b.WriteString(`{"files": {`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"/%s/some/longer/folder/name/file-%06d.html": "%s"`, tag, i, atolltest.SHA256Hex(fmt.Sprint(tag, i)))
	}
	b.WriteString("}}")
	return b.String()
}

// TestRaftStorageFailureEndToEnd fills the disk under a node between its
// Raft log and its state: the log takes the entries of a manifest, the
// state cannot store them. The node must stay up and say so (readiness
// fails naming the storage failure, writes are refused with 503) instead
// of panicking; restarted with space it replays the log and is whole.
func TestRaftStorageFailureEndToEnd(t *testing.T) {
	s := newServer(t)
	mountTmpfs(t, s.Data, "64m")
	s.Flags = []string{"--min-free", "0"}
	s.LogPath = filepath.Join(t.TempDir(), "node.log")
	s.Start()
	s.MustCLI("site", "create", "blog")

	// Small enough for one log entry and one state transaction.
	const files = 1000
	create := func(tag string) (int, map[string]any) {
		return s.API("POST", "/v1/sites/blog/deploys", s.Token(), "application/json", strings.NewReader(manifest(tag, files)))
	}
	var logGrew, stateGrew int64
	for _, tag := range []string{"a", "b", "c"} { // the first ones grow the files' structure
		logBefore, stateBefore := allocated(t, s.Data, "raft.db"), allocated(t, s.Data, "fsm.db")
		if status, body := create(tag); status != http.StatusCreated {
			t.Fatalf("manifest %s: %d %v", tag, status, body)
		}
		logGrew, stateGrew = allocated(t, s.Data, "raft.db")-logBefore, allocated(t, s.Data, "fsm.db")-stateBefore
		t.Logf("a manifest of %d files took %d bytes of Raft log and %d of state", files, logGrew, stateGrew)
	}

	// Room for the next manifest's log entry and a third of its state.
	filler := filepath.Join(s.Data, "filler")
	if err := os.WriteFile(filler, make([]byte, freeOn(t, s.Data)-logGrew-stateGrew/3), 0o600); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	status, body := create("d")
	t.Logf("second manifest on the full disk: %d %v", status, body)
	if !s.Running() {
		t.Fatalf("the node died when its state could not be stored:\n%s", s.Output())
	}
	if status == http.StatusCreated {
		t.Fatalf("second manifest stored on a disk without room for it")
	}
	rstatus, rbody := s.API("GET", "/readyz", "", "", nil)
	if msg, _ := rbody["error"].(string); rstatus != http.StatusServiceUnavailable || !strings.Contains(msg, "storage failed") {
		t.Errorf("/readyz after the storage failure: %d %v, want 503 naming it", rstatus, rbody)
	}
	if out, _, code := s.CLI("status"); code == 0 || !strings.Contains(out, "stopped applying the replicated state: ") {
		t.Errorf("atoll status after the storage failure: exit %d, want 1 and the node's stopped state named:\n%s", code, out)
	}
	wstatus, wbody := s.API("POST", "/v1/sites", s.Token(), "application/json", strings.NewReader(`{"name": "other"}`))
	if msg, _ := wbody["error"].(string); (wstatus != http.StatusServiceUnavailable && wstatus != http.StatusInsufficientStorage) || !strings.Contains(msg, "storage failed") {
		t.Errorf("a write after the storage failure: %d %v, want 503 or 507 naming it", wstatus, wbody)
	}
	if _, got := s.Get("GET", "blog.localhost", "/"); got == "" {
		t.Log("(blog has no published deploy: only that the edge answers matters)")
	}

	// Space returns; a restart replays the log into the state.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.Kill(syscall.SIGTERM)
	s.Start()
	s.MustCLI("site", "create", "other")
	// The log holds manifest d (committed before the state failed): the
	// replay brings it in, with a, b and c.
	status, body = s.API("GET", "/v1/sites/blog/deploys", s.Token(), "", nil)
	if list, _ := body["deploys"].([]any); status != http.StatusOK || len(list) != 4 {
		t.Errorf("deploys after the restart: %d %v, want the 4 manifests", status, body)
	}
}

// startWithFullNode starts three core nodes, the third (full) with its
// disk below the reserve (--min-free larger than any disk).
func startWithFullNode(t *testing.T) (core1, core2, full *atolltest.Server) {
	t.Helper()
	const key, token = "e2e-cluster-key", "e2e-admin-token"
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, Flags: append([]string{"--cluster-key", key}, flags...)})
	}
	core1 = mk("core1")
	core1.Bootstrap = true
	core1.Start()
	core2 = mk("core2", "--join", "http://"+core1.APIAddr)
	core2.Start()
	full = mk("core3", "--join", "http://"+core1.APIAddr, "--min-free", "1048576TiB")
	full.Start()
	return core1, core2, full
}

// TestFullNodeInClusterEndToEnd runs three core nodes, the third with its
// disk below the reserve: a deploy through it still succeeds (the blobs
// are relayed to the two owners with room), it serves every file of the
// site, small and large, though it can keep no copy, and it reports the
// condition in /readyz (still ready: it serves), /v1/status and `atoll
// status`. A blob too big to relay is refused with 507, and the CLI moves
// on to the next --api node as from a dead one.
func TestFullNodeInClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	core1, core2, full := startWithFullNode(t)

	big := make([]byte, 300<<10) // past what the edge keeps in memory
	rand.Read(big)
	site := t.TempDir()
	files := map[string]string{"index.html": "<h1>through the full node</h1>", "photo.bin": string(big)}
	writeTree(t, site, files)
	full.MustCLI("site", "create", "blog")
	full.MustCLI("deploy", site, "--site", "blog") // relayed: core3 stores nothing
	if left := tempFiles(t, full.Data); len(left) != 0 {
		t.Errorf("temp files on the full node: %v", left)
	}
	for name, body := range files {
		resp, got := full.Get("GET", "blog.localhost", "/"+name)
		if resp.StatusCode != 200 || got != body {
			t.Errorf("full node serves /%s: %d, %d bytes, want 200 and the %d bytes deployed", name, resp.StatusCode, len(got), len(body))
		}
	}

	// The CLI moves on from the full node's 507 (a blob over what it
	// relays would get one) like from a dead node.
	huge := make([]byte, 40<<20)
	rand.Read(huge)
	writeTree(t, site, map[string]string{"huge.bin": string(huge)})
	full.MustCLI("deploy", site, "--site", "blog", "--api", full.APIAddr+","+core1.APIAddr)
	if resp, got := core2.Get("GET", "blog.localhost", "/huge.bin"); resp.StatusCode != 200 || got != string(huge) {
		t.Errorf("core2 serves /huge.bin: %d, %d bytes, want the %d deployed", resp.StatusCode, len(got), len(huge))
	}

	status, body := full.API("GET", "/readyz", "", "", nil)
	if low, _ := body["degraded"].(string); status != http.StatusOK || !strings.Contains(low, "disk space") {
		t.Errorf("/readyz of the full node: %d %v, want 200 (it serves) with degraded naming the disk", status, body)
	}
	out := core1.MustCLI("status")
	if !strings.Contains(out, "core3: disk low") {
		t.Errorf("atoll status does not show the full node's disk:\n%s", out)
	}
}
