package atoll

// Release is this source tree's release version (semantic versioning). It
// moves forward in the commit that cuts a release: the minor number when
// the release brings a feature level, a data-dir format or a new command
// type; the patch number for fixes alone. A node reports it, with the
// build's commit, as its version (NodeStatus.Version).
const Release = "0.14.0"
