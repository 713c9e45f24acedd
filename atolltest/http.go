package atolltest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Fetch makes one request to url with the given Host and header name/value
// pairs (a pair with an empty value is left out) and returns the answer
// with its body read as sent (c decides about redirects and decompression).
func Fetch(ctx context.Context, c *http.Client, method, url, host string, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// WaitOK polls url (each try bounded to 5s) until it answers 200, or ctx
// ends.
func WaitOK(ctx context.Context, c *http.Client, url string) error {
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, _, err := Fetch(tctx, c, "GET", url, "")
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Decode returns body decoded from the Content-Encoding enc: "" (as is),
// "gzip", "br" or "zstd".
func Decode(enc string, body []byte) ([]byte, error) {
	var r io.Reader
	switch enc {
	case "":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("unknown Content-Encoding %q", enc)
	}
	return io.ReadAll(r)
}

var deployIDRe = regexp.MustCompile(`deploy ([a-z0-9]+)`)

// DeployID returns the deploy id that `atoll deploy` printed ("deploy
// <id>: ..."), "" if there is none.
func DeployID(out string) string {
	if m := deployIDRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}
