// Package upgrade holds the rolling-upgrade test: it builds the previous
// release (the commit named in PREVIOUS_RELEASE, from this clone's git
// history) and the current tree, starts 3 core nodes and 1 edge on the
// previous release, and replaces them one at a time with the current
// binary under continuous deploys and reads, the way docs/UPGRADING.md
// tells an operator to. TestFeedFromBelowFedLevel starts an edge of the
// current binary with --feed-from in a cluster of the previous release,
// which is below the level of fed edges: it must join as a Raft
// non-voter. It runs in make test, apart from cmd/atoll's
// end-to-end tests so that both run at once.
//
// The package has no code outside its tests; it must never be imported.
package upgrade
