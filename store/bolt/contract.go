package bolt

import "hookd/store"

var _ store.Store = (*DB)(nil)
