package bolt

import (
	"bytes"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// ExpiredExports returns up to limit export jobs created before cutoff that
// have ended. The janitor deletes their files, then DeleteExports removes
// the records.
func (db *DB) ExpiredExports(cutoff time.Time, limit int) ([]store.ExportJob, error) {
	var out []store.ExportJob
	end := timeKey(cutoff)
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		jobs := tx.Bucket(bucketExports)
		c := tx.Bucket(bucketExportsBySub).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; {
			if bytes.Compare(k[16:24], end) >= 0 {
				k, _ = c.Seek(prefixEnd(k[:16])) // the subscription's later jobs are younger
				continue
			}
			var j store.ExportJob
			if err := getJSON(jobs, k[24:], &j); err != nil {
				return err
			}
			if !j.State.Active() {
				out = append(out, j)
			}
			k, _ = c.Next()
		}
		return nil
	})
	return out, err
}

// DeletedSubscriptionExports returns up to limit export jobs of the deleted
// subscription sub (one with a tombstone), in any state. The janitor
// deletes their files, then DeleteExports removes the records.
func (db *DB) DeletedSubscriptionExports(sub uuid.UUID, limit int) ([]store.ExportJob, error) {
	var out []store.ExportJob
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketTombstones).Get(sub[:]) == nil {
			return nil
		}
		jobs := tx.Bucket(bucketExports)
		c := tx.Bucket(bucketExportsBySub).Cursor()
		for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(out) < limit; k, _ = c.Next() {
			var j store.ExportJob
			if err := getJSON(jobs, k[24:], &j); err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// DeleteExports removes the records of the jobs ids with their index
// entries and export range, whatever their state, and returns how many it
// removed; unknown ids are skipped. The jobs' files are the caller's to
// delete, before this call.
func (db *DB) DeleteExports(ids []uuid.UUID) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		ranges := tx.Bucket(bucketExportRanges)
		for _, id := range ids {
			j, err := getExport(tx, id)
			if err != nil {
				continue
			}
			if j.State.Active() {
				if err := tx.Bucket(bucketExportsActive).Delete(activeKey(&j)); err != nil {
					return err
				}
			}
			rk := failKey(j.SubscriptionID, j.ToSeq)
			if v := ranges.Get(rk); v != nil && bytes.Equal(v, j.ID[:]) {
				if err := ranges.Delete(rk); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketExportsBySub).Delete(exportIndexKey(&j)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketExports).Delete(j.ID[:]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// ExportsByID returns the jobs of ids that exist, by id.
func (db *DB) ExportsByID(ids []uuid.UUID) (map[uuid.UUID]store.ExportJob, error) {
	out := make(map[uuid.UUID]store.ExportJob, len(ids))
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		for _, id := range ids {
			if j, err := getExport(tx, id); err == nil {
				out[id] = j
			}
		}
		return nil
	})
	return out, err
}

// DropTombstone removes the tombstone of the deleted subscription sub once
// nothing of it is left: its events and their indexes (removed by
// PurgeDeleted) and its export jobs (removed by DeleteExports after their
// files). It reports whether the tombstone is gone; while something is
// left it keeps the tombstone and reports false.
func (db *DB) DropTombstone(sub uuid.UUID) (bool, error) {
	dropped := false
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		dropped = false
		stones := tx.Bucket(bucketTombstones)
		if stones.Get(sub[:]) == nil {
			dropped = true
			return nil
		}
		for _, name := range [][]byte{bucketEvents, bucketDue, bucketFailures, bucketExportRanges, bucketExportsBySub} {
			if k, _ := tx.Bucket(name).Cursor().Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) {
				return nil
			}
		}
		dropped = true
		return stones.Delete(sub[:])
	})
	return dropped, err
}
