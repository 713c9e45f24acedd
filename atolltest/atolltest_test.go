package atolltest_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/atoll-hosting/atoll/atolltest"
)

func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		addr, err := atolltest.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("FreeAddr returned %s twice", addr)
		}
		seen[addr] = true
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("FreeAddr: got %s, want a loopback address", addr)
		}
	}
}

func TestSHA256Hex(t *testing.T) {
	const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := atolltest.SHA256Hex(""); got != empty {
		t.Errorf("SHA256Hex(\"\"): got %s, want %s", got, empty)
	}
	if got, want := atolltest.SHA256Hex([]byte("abc")), atolltest.SHA256Hex("abc"); got != want {
		t.Errorf("SHA256Hex of []byte and string differ: %s, %s", got, want)
	}
}

func TestWriteTreeAndTar(t *testing.T) {
	files := map[string]string{"index.html": "<h1>home</h1>", "a/b/c.css": "body{}", "empty.txt": ""}
	dir := t.TempDir()
	if err := atolltest.WriteTree(dir, files); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		gzipped bool
	}{
		{"tar", atolltest.Tar(files), false},
		{"tar.gz", atolltest.TarGz(files), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tc.archive)
			if tc.gzipped {
				zr, err := gzip.NewReader(r)
				if err != nil {
					t.Fatal(err)
				}
				r = zr
			}
			tr := tar.NewReader(r)
			got := map[string]string{}
			var order []string
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(tr)
				got[h.Name] = string(b)
				order = append(order, h.Name)
			}
			if len(got) != len(files) {
				t.Errorf("got %d entries %v, want %d", len(got), order, len(files))
			}
			for name, want := range files {
				if got[name] != want {
					t.Errorf("%s: got %q, want %q", name, got[name], want)
				}
			}
			if want := []string{"a/b/c.css", "empty.txt", "index.html"}; strings.Join(order, " ") != strings.Join(want, " ") {
				t.Errorf("order: got %v, want %v", order, want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	plain := []byte(strings.Repeat("atoll serves static sites\n", 100))
	var gz, br, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	bw := brotli.NewWriter(&br)
	bw.Write(plain)
	bw.Close()
	sw, _ := zstd.NewWriter(&zs)
	sw.Write(plain)
	sw.Close()
	for _, tc := range []struct {
		enc     string
		body    []byte
		wantErr bool
	}{
		{"", plain, false},
		{"gzip", gz.Bytes(), false},
		{"br", br.Bytes(), false},
		{"zstd", zs.Bytes(), false},
		{"gzip", plain, true},
		{"deflate", plain, true},
	} {
		got, err := atolltest.Decode(tc.enc, tc.body)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("Decode(%q) of bytes not so encoded: no error", tc.enc)
		case !tc.wantErr && (err != nil || !bytes.Equal(got, plain)):
			t.Errorf("Decode(%q): %d bytes, %v; want the %d plain bytes", tc.enc, len(got), err, len(plain))
		}
	}
}

func TestDeployID(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"deploy", "deploy 7k2m9x0q1a: 6 files, 6 uploaded (1.2 KiB) in 30ms\npublished: http://blog.localhost/\n", "7k2m9x0q1a"},
		{"rollback", "published deploy abc123 on blog: http://blog.localhost/\n", "abc123"},
		{"none", "site blog created\n", ""},
	} {
		if got := atolltest.DeployID(tc.out); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRunCommand(t *testing.T) {
	for _, tc := range []struct {
		name                string
		script              string
		wantOut, wantErrOut string
		wantCode            int
	}{
		{"success", "echo out; echo err >&2", "out\n", "err\n", 0},
		{"failure", "echo 'one line' >&2; exit 3", "", "one line\n", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := atolltest.RunCommand(exec.Command("sh", "-c", tc.script))
			if err != nil {
				t.Fatal(err)
			}
			if res.Stdout != tc.wantOut || res.Stderr != tc.wantErrOut || res.Code != tc.wantCode {
				t.Errorf("got %q %q exit %d, want %q %q exit %d", res.Stdout, res.Stderr, res.Code, tc.wantOut, tc.wantErrOut, tc.wantCode)
			}
			var ee *atolltest.ExitError
			if gotErr := res.Err(); (gotErr != nil) != (tc.wantCode != 0) || (gotErr != nil && !errors.As(gotErr, &ee)) {
				t.Errorf("Err(): got %v, want an *ExitError exactly for a non-zero exit", gotErr)
			}
		})
	}
	if _, err := atolltest.RunCommand(exec.Command(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Error("RunCommand of a missing program: no error")
	}
}

// TestProcessStop: a process that ignores the stop signal is killed once
// the grace period is over; one that heeds it exits with it.
func TestProcessStop(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		wantSignal   syscall.Signal
	}{
		{"heeds SIGTERM", "exec sleep 60", syscall.SIGTERM},
		{"ignores SIGTERM", "trap '' TERM; echo ready; while :; do sleep 0.1; done", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			p, err := atolltest.StartProcess(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantSignal == syscall.SIGKILL {
				// The trap is set once the shell speaks.
				if _, err := out.Read(make([]byte, 6)); err != nil {
					t.Fatal(err)
				}
			}
			p.Stop(syscall.SIGTERM, 200*time.Millisecond)
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the process exited")
			}
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != tc.wantSignal {
				t.Errorf("exit: %v, want killed by %v", cmd.ProcessState, tc.wantSignal)
			}
		})
	}
}

type closer struct {
	name  string
	order *[]string
}

func (c closer) Close() error { *c.order = append(*c.order, c.name); return nil }

func TestGroupClosesLastFirst(t *testing.T) {
	var order []string
	var g atolltest.Group
	for _, name := range []string{"core1", "core2", "nginx"} {
		g.Add(closer{name, &order})
	}
	g.Close()
	g.Close() // forgets them: nothing is closed twice
	if got, want := strings.Join(order, " "), "nginx core2 core1"; got != want {
		t.Errorf("close order: got %q, want %q", got, want)
	}
}
