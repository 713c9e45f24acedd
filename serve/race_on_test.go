//go:build race

package serve

// raceOn: the race detector is on, and sync.Pool drops some of what it is
// given, so allocation counts are not checked.
const raceOn = true
