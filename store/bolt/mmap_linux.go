//go:build linux

package bolt

import (
	"syscall"

	"go.etcd.io/bbolt"
)

// releaseMapped drops the data file's pages from this process's page
// tables (MADV_DONTNEED on the read-only shared mapping). The pages stay in
// the OS page cache and the next read maps them again, so nothing is lost;
// a long scan calls it between chunks so that reading a large store does
// not count the whole file into the process's resident set. tx pins the
// mapping: bbolt cannot remap it while a transaction is open.
func (db *DB) releaseMapped(tx *bbolt.Tx) {
	info := db.bolt.Info()
	if info == nil || info.Data == 0 || tx.Size() <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, info.Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
}
