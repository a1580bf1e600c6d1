package bolt

import (
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

// BackupTo writes a consistent copy of the store while it serves. In one
// read transaction it calls open with the copy's exact size in bytes (for a
// Content-Length, say), then writes the copy to the writer open returned,
// and reports how many bytes it wrote. Writers are not blocked meanwhile;
// the copy shows the store as of the transaction's start.
func (db *DB) BackupTo(open func(size int64) (io.Writer, error)) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		w, err := open(tx.Size())
		if err != nil {
			return err
		}
		n, err = tx.WriteTo(w)
		if err == nil && n != tx.Size() {
			err = fmt.Errorf("backup: wrote %d bytes, want %d", n, tx.Size())
		}
		return err
	})
	return n, err
}
