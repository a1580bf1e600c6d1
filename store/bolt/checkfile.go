package bolt

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// CheckFile checks a store file that no process has open, such as a
// backup copy: it opens it read-only, runs bbolt's consistency check and
// makes sure it is a hookd store (it has the meta bucket with a schema
// version).
func CheckFile(path string) error {
	db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drained: the checker goroutine reads the tx until it closes the channel
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check: %w", errors.Join(errs...))
		}
		if m := tx.Bucket(bucketMeta); m == nil || m.Get(keyVersion) == nil {
			return errors.New("not a hookd store: no schema version")
		}
		return nil
	})
}
