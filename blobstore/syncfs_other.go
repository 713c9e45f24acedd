//go:build !linux

package blobstore

import "errors"

func syncFS(string) error { return errors.New("syncfs: not on this system") }

const haveSyncFS = false
