package atolltest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
