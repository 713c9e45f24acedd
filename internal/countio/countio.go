// Package countio counts the bytes that pass through a reader or a
// writer: what a WriterTo returns, or whether a failed call consumed any
// of its input. It depends on the standard library alone (the Go client
// uses it).
package countio

import "io"

// Writer writes to W and counts in N the bytes W took.
type Writer struct {
	W io.Writer
	N int64
}

func (c *Writer) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// Reader reads from R and counts in N the bytes it returned.
type Reader struct {
	R io.Reader
	N int64
}

func (c *Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
