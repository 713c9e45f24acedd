package serve

import (
	"io"
	"os"

	"github.com/valyala/fasthttp"
)

// fileSection is the body of a 206 answer: the next n bytes of an open blob
// file, from its current offset. fasthttp closes it (and so the file) once
// the response is written.
//
// A bare *io.LimitedReader would lose the Close, and an io.SectionReader
// would lose sendfile. fileSection implements fasthttp.BodyWriterTo instead:
// fasthttp calls WriteTo with its fixed-size body writer, whose ReadFrom
// receives an *io.LimitedReader around the *os.File, exactly the shape that
// net.TCPConn.ReadFrom turns into sendfile(2), which sends from the file's
// current offset. Ranges therefore go out zero-copy like whole files.
type fileSection struct {
	f  *os.File
	lr io.LimitedReader
}

var _ fasthttp.BodyWriterTo = (*fileSection)(nil)

func newFileSection(f *os.File, n int64) *fileSection {
	s := &fileSection{f: f}
	s.lr = io.LimitedReader{R: f, N: n}
	return s
}

func (s *fileSection) Read(p []byte) (int, error) { return s.lr.Read(p) }

// WriteTo sends the section to w, through w's ReadFrom when it has one.
func (s *fileSection) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(&s.lr)
	}
	return io.Copy(w, &s.lr)
}

// SupportsBodyWriteTo tells fasthttp that WriteTo is equivalent to reading.
func (s *fileSection) SupportsBodyWriteTo() bool { return true }

func (s *fileSection) Close() error { return s.f.Close() }
