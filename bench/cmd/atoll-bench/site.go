package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// site is the synthetic site on disk.
type site struct {
	dir       string
	files     int
	bytes     int64
	textFiles int
	binFiles  int
	text      []string // relative paths of the text files
}

// Files every serving case requests. Text, like most of a real site, so
// Atoll holds compressed variants of them (and sends Vary).
var benchFiles = []struct {
	path string
	size int
}{
	{"/bench/1k.css", 1 << 10},
	{"/bench/16k.js", 16 << 10},
	{"/bench/256k.js", 256 << 10},
	{"/bench/30k.html", 30 << 10},
}

var words = strings.Fields(`atoll static site hosting edge node cluster raft deploy publish
rollback blob hash manifest content encoding brotli gzip zstd cache header request response
the of and to in is for on with as by at from that this be are or it an was which page
section article nav footer main div span class id href src style script link meta title
container row column button input form label image figure caption table list item grid`)

// generateSite writes the synthetic site: text files of 1-30 KiB (HTML, CSS
// and JS made of words, so they compress like real text), binaries of
// 100 KiB-5 MiB (random bytes behind image signatures, incompressible like
// real images), and the fixed files of the serving cases. The same seed
// always gives the same bytes.
func generateSite(dir string, textFiles, binFiles int, seed uint64) (*site, error) {
	return generateSiteSized(dir, textFiles, binFiles, 0, seed)
}

// generateSiteSized is generateSite with binaries uniform between 100 KiB
// and binMax bytes instead (binMax 0: generateSite's log-uniform sizes).
func generateSiteSized(dir string, textFiles, binFiles, binMax int, seed uint64) (*site, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &site{dir: dir}
	write := func(rel string, b []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		s.files++
		s.bytes += int64(len(b))
		return os.WriteFile(p, b, 0o644)
	}
	for _, f := range benchFiles {
		if err := write(f.path, textOf(rng, f.path, f.size)); err != nil {
			return nil, err
		}
		s.textFiles++
	}
	exts := []string{".html", ".html", ".html", ".css", ".js"}
	for i := range textFiles {
		ext := exts[i%len(exts)]
		rel := fmt.Sprintf("/%s/%03d/%05d%s", strings.TrimPrefix(ext, "."), i/100, i, ext)
		size := 1<<10 + rng.IntN(29<<10)
		if err := write(rel, textOf(rng, rel, size)); err != nil {
			return nil, err
		}
		s.text = append(s.text, rel)
		s.textFiles++
	}
	for i := range binFiles {
		// Log-uniform between 100 KiB and 5 MiB: many small images, a few big.
		size := int(100 << 10 * math.Pow(50, rng.Float64()))
		if binMax > 0 {
			size = 100<<10 + rng.IntN(binMax-100<<10+1)
		}
		ext, magic := ".png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
		if i%2 == 1 {
			ext, magic = ".jpg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
		}
		b := make([]byte, size)
		for j := 0; j+8 <= len(b); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		copy(b, magic)
		if err := write(fmt.Sprintf("/img/%03d%s", i, ext), b); err != nil {
			return nil, err
		}
		s.binFiles++
	}
	return s, nil
}

// textOf returns size bytes of HTML-like text made of random words.
func textOf(rng *rand.Rand, name string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "<!doctype html><!-- %s -->\n", name)
	for b.Len() < size {
		fmt.Fprintf(&b, "<p class=\"%s\">", words[rng.IntN(len(words))])
		for range 8 + rng.IntN(16) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString("</p>\n")
	}
	return b.Bytes()[:size]
}

// touch changes one text file (appends a line), for a redeploy.
func (s *site) touch(n int) (string, error) {
	rel := s.text[0]
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "<!-- change %d -->\n", n)
	return rel, err
}

// nginxRoot makes the folder nginx serves: hard links to the site's files
// (or copies, across file systems), plus a .gz next to every text file, as
// gzip_static wants them (gzip -9).
func (s *site) nginxRoot(root string) error {
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if err := os.Link(p, dst); err != nil {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
		}
		switch filepath.Ext(p) {
		case ".html", ".css", ".js":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
			zw.Write(b)
			zw.Close()
			return os.WriteFile(dst+".gz", z.Bytes(), 0o644)
		}
		return nil
	})
}

type siteSummary struct {
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`
	TextFiles int   `json:"text_files"`
	BinFiles  int   `json:"binary_files"`
}

func (s *site) summary() siteSummary {
	return siteSummary{Files: s.files, Bytes: s.bytes, TextFiles: s.textFiles, BinFiles: s.binFiles}
}
