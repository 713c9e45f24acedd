package atolltest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// SHA256Hex is the content address of b: its SHA-256 in lower-case hex.
func SHA256Hex[T ~string | ~[]byte](b T) string {
	sum := sha256.Sum256([]byte(b))
	return hex.EncodeToString(sum[:])
}

// WriteTree writes files (slash-separated path relative to dir -> content)
// under dir, making the folders they need.
func WriteTree[T ~string | ~[]byte](dir string, files map[string]T) error {
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Listing lists every file and folder under dir, one a line in path
// order: the path relative to dir, its mode, and for a file its size and
// the SHA-256 of its content. Two listings are equal when nothing under
// dir was added, removed, or changed in content or mode.
func Listing(dir string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/ %s\n", filepath.ToSlash(rel), info.Mode())
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s %d %s\n", filepath.ToSlash(rel), info.Mode(), len(data), SHA256Hex(data))
		return nil
	})
	return b.String(), err
}

// Tar is a tar archive of files (name in the archive -> content), regular
// files with mode 0644, in name order.
func Tar(files map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		// Writes to a bytes.Buffer cannot fail.
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	return b.Bytes()
}

// TarGz is Tar compressed with gzip.
func TarGz(files map[string]string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(Tar(files))
	zw.Close()
	return b.Bytes()
}
