//go:build !linux

package bolt

import "go.etcd.io/bbolt"

// releaseMapped does nothing on this system; see mmap_linux.go.
func (db *DB) releaseMapped(*bbolt.Tx) {}
