// Package jobs runs hookd's background work: export jobs and the janitor.
//
// The Exporter writes bulk exports of failed events: it picks up jobs that
// the API created in the store (state processing), streams one NDJSON line
// per event to the blob bucket through blobsink, and completes the job and
// marks its events exported in one store transaction once the file is
// committed. A write cut short by a shutdown or a crash leaves no reachable
// file and no changed event; the job is written again. A bounded number
// of writers serve the jobs of all customers in turn (see Exporter); on a
// store several processes share, the writers of all of them take the jobs
// from one queue in the store, each job under a claim with a lease (see
// SharedQueue). A
// write that fails on the blob store is retried with backoff for a bounded
// time while the job keeps its events; only then does the job fail, with a
// reason the customer can read.
//
// The janitor runs a list of tasks, each deleting expired or orphaned data
// in bounded batches: events, tokens, export jobs and their files, and what
// deleted subscriptions left behind.
package jobs
