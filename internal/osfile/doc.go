// Package osfile opens and creates regular files without the network
// poller's overhead, for the paths that open one file per blob: the blob
// store's temp files and reads, and the client's reads of a deploy's files.
//
// On Linux a file is opened with open(2) and wrapped with os.NewFile,
// which reads the descriptor's flags once. os.OpenFile and os.CreateTemp
// instead try to register every file with the network poller: a
// non-blocking flag set and cleared again around an epoll_ctl that a
// regular file always refuses, four fcntl calls and one failed epoll_ctl
// per file (bench/RESULTS.md, "Ingest: fewer system calls per blob").
// Reads and writes of such a file block their thread, as they do for any
// regular file. Elsewhere the functions are os.CreateTemp and os.Open.
// RetryEINTR, on Linux alone, is the retry loop around a raw system call
// that internal/durable shares. It depends on the standard library alone
// (the Go client uses it).
package osfile
