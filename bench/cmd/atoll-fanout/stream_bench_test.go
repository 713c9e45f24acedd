package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// The per-follower cost of one published entry, both ways docs/FANOUT.md
// compares, over real loopback TCP (sender and receivers in this process,
// so each figure includes the receiving end):
//
//   - AppendEntries: hashicorp/raft's NetworkTransport, one request per
//     follower carrying the entry, encoded for each (msgpack), answered
//     and the answer decoded: what the leader does per follower today;
//   - Frame: the entry encoded once into a frame and written to every
//     follower's stream, nothing answered: what a relay does per fed edge.
//
// ns/op and cpu-ns/follower are per follower. make bench-go does not run these (they are in a
// command's package); run them with
//
//	go test -run '^$' -bench 'PerFollower' ./bench/cmd/atoll-fanout/
func BenchmarkPerFollowerAppendEntries(b *testing.B) {
	const followers = 32
	leader, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer leader.Close()
	var addrs []hraft.ServerAddress
	for range followers {
		t, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		go func() {
			for rpc := range t.Consumer() {
				rpc.Respond(&hraft.AppendEntriesResponse{Success: true}, nil)
			}
		}()
		addrs = append(addrs, t.LocalAddr())
	}
	entry := benchEntry()
	defer cpuPerOp(b)()
	for i := range b.N {
		a := addrs[i%followers]
		req := &hraft.AppendEntriesRequest{RPCHeader: hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax},
			Term: 1, PrevLogEntry: uint64(i), PrevLogTerm: 1, LeaderCommitIndex: uint64(i),
			Entries: []*hraft.Log{{Index: uint64(i + 1), Term: 1, Type: hraft.LogCommand, Data: entry}}}
		if err := leader.AppendEntries(hraft.ServerID(a), a, req, new(hraft.AppendEntriesResponse)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPerFollowerFrame(b *testing.B) {
	const followers = 32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) //nolint:errcheck // a reader that discards
		}
	}()
	var conns []net.Conn
	for range followers {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	entry := benchEntry()
	defer cpuPerOp(b)()
	var frame []byte
	for i := range b.N {
		if i%followers == 0 { // a new entry: encoded once for every stream
			frame = binary.BigEndian.AppendUint64(frame[:0], uint64(i+1))
			frame = binary.BigEndian.AppendUint64(frame, 1)
			frame = binary.BigEndian.AppendUint32(frame, uint32(len(entry)))
			frame = append(frame, entry...)
		}
		if _, err := conns[i%followers].Write(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEntry is a Publish-sized command (~200 bytes).
func benchEntry() []byte {
	return fmt.Appendf(nil, `{"deploy":"h5etd52yun","at":"%s","site":"prop"}%0120d`, time.Unix(0, 0).UTC().Format(time.RFC3339Nano), 0)
}

// cpuPerOp reports the process's CPU time (user and system, every
// goroutine: both ends of the connections) per operation, which wall time
// per operation is not for a request that waits for its answer.
func cpuPerOp(b *testing.B) func() {
	b.Helper()
	before := processCPU()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64((processCPU()-before).Nanoseconds())/float64(b.N), "cpu-ns/follower")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
