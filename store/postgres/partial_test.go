package postgres

import "hookd/store"

// partial makes a *DB a store.Store while the backend's areas land one by
// one: a method not written yet panics. It goes once *DB implements the
// contract whole.
type partial struct {
	*DB
	missing
}

type missing struct{ store.Store }

func asStore(db *DB) store.Store { return partial{DB: db} }
