package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
)

// Defaults for ExporterOptions fields left zero.
const (
	// DefaultExportWriters is how many export files a process writes at
	// once (on a shared store, each process); the other jobs wait their
	// turn.
	DefaultExportWriters     = 1
	DefaultExportPoll        = time.Second
	DefaultExportMaxAttempts = 3
	// DefaultExportRetryFor is how long a job whose writes fail on the
	// blob store is retried, from its first blob error, before it fails.
	DefaultExportRetryFor = 30 * time.Minute
	// DefaultExportRetryBackoff is the wait before the first retry; each
	// further wait doubles, up to maxExportRetryBackoff.
	DefaultExportRetryBackoff = time.Second
	maxExportRetryBackoff     = time.Minute
	// exportChunk is the number of failure sequences read per store
	// transaction while writing a file.
	exportChunk = 5000
	// DefaultExportLease is how long a process's claim on an export job
	// of a shared store holds without a renewal: a process that died
	// writing leaves its job to the others within it.
	DefaultExportLease = 30 * time.Second
	// queueErrorBurst is how many failed looks for work in a shared
	// store's queue are logged per minute.
	queueErrorBurst = 3
	// cleanupTimeout bounds the removal of an abandoned file.
	cleanupTimeout = 30 * time.Second
)

// ExporterOptions configure an Exporter.
type ExporterOptions struct {
	DB     store.Store
	Bucket *blob.Bucket
	Log    zerolog.Logger
	// PublicURL is the base of the tokens' issuer, without trailing slash.
	PublicURL string
	// Retention leaves out events that failed longer ago (0: none left out).
	Retention time.Duration
	// Writers is the number of jobs this process writes at once, over
	// all customers (DefaultExportWriters when zero).
	Writers int
	// Poll is how often the store is checked for jobs besides Enqueue.
	Poll time.Duration
	// MaxAttempts is how many times a job's write may be interrupted (by
	// a crash or a shutdown) before it fails.
	MaxAttempts int
	// RetryFor is how long a job whose writes fail on the blob store is
	// retried, from the first such failure, before it fails
	// (DefaultExportRetryFor when zero). Meanwhile it waits in processing
	// and its events stay reserved to it.
	RetryFor time.Duration
	// RetryBackoff is the first wait before a retry; each further wait
	// doubles up to a minute (DefaultExportRetryBackoff when zero).
	RetryBackoff time.Duration
	// Uploads aborts the unfinished S3 multipart uploads that a failed
	// write could not abort itself; nil for the other backends.
	Uploads *blobsink.Uploads
	// Registerer receives the export metrics; nil registers none.
	Registerer prometheus.Registerer
	// Shared, when set, is the queue of a store that several processes
	// share (the nodes of a cluster): every worker of every process takes
	// its jobs from it, each job under a claim with a lease of Lease that
	// the worker renews while it writes, in the fair order kept over all
	// the processes; a job that a process which died left writing is taken
	// over by the next worker that looks. Writers is then the number of
	// writers of this process. Without it the process is alone: the queue
	// is its own (see claim) and it recovers the jobs left writing at its
	// start (see Recover).
	Shared SharedQueue
	// Lease is how long a claim of Shared holds without a renewal
	// (DefaultExportLease when zero); it is renewed every third of it.
	Lease time.Duration
}

// jobChanges are the changes of a job's state that its writer makes: the
// store's, or on a shared store the SharedQueue's, which make them only
// while the writer holds the job's claim.
type jobChanges interface {
	BeginExportWrite(id uuid.UUID, key string) (store.ExportJob, error)
	ResumeExport(id uuid.UUID) (store.ExportJob, error)
	FailExport(id uuid.UUID, reason, detail string) (store.ExportJob, error)
	RetryExport(id uuid.UUID, retryAt time.Time, detail string) (store.ExportJob, error)
	CompleteExport(id uuid.UUID, r store.ExportResult) (store.ExportJob, error)
}

// SharedQueue hands this process the export jobs of a store that several
// processes share, each under a claim with a lease, in a fair order kept
// over all of them (store/postgres.ExportClaims). Its job changes are the
// store's, made only while this process holds the job's claim: otherwise
// they are an ErrConflict and change nothing.
type SharedQueue interface {
	jobChanges
	// NextExport claims the next job waiting in processing, in the fair
	// order; ok is false when none waits.
	NextExport(lease time.Duration) (job store.ExportJob, ok bool, err error)
	// AbandonedExport claims a job left in writing whose claim ran out.
	AbandonedExport(lease time.Duration) (job store.ExportJob, ok bool, err error)
	// RenewExport extends the claim on job id; held is false once the
	// claim is no longer this process's.
	RenewExport(id uuid.UUID, lease time.Duration) (held bool, err error)
	// DropExportClaim forgets the claim on job id once the process is
	// done with the job.
	DropExportClaim(id uuid.UUID)
}

// Exporter writes export jobs in the background. Jobs are created in the
// store by the API; Enqueue makes the Exporter look at once, and it also
// looks every Poll. A job is written by one of Writers workers from start
// to end: BeginExportWrite, the file streamed to the bucket, the blob
// writer's Close (the commit), then CompleteExport.
//
// Jobs wait in processing for a free writer in a fair queue: the next job
// written is the oldest waiting job of the customer whose turn came longest
// ago (see claim), so that a customer with many jobs (one per subscription,
// with the subscription scope) takes one turn in each round, not the
// writers. On a shared store the queue is the store's (SharedQueue), in
// the same order over all the processes.
type Exporter struct {
	o       ExporterOptions
	changes jobChanges // o.DB, or o.Shared
	// queueLog logs the errors of Shared's looks for work: while the
	// database is away every writer's look fails, each second.
	queueLog zerolog.Logger
	m        *exporterMetrics
	wake     chan struct{}
	mu       sync.Mutex
	running  map[uuid.UUID]bool
	// turn is, for each customer with active jobs, the number of the last
	// turn it was given (turns counts them), or the turn current when its
	// jobs were first seen waiting: the customer with the lowest number
	// goes next.
	turn  map[uuid.UUID]uint64
	turns uint64
	// cleanups are the keys of failed writes whose file or upload could
	// not be removed yet (the blob store did not answer), tried again with
	// backoff by the workers.
	cleanups map[string]*cleanup
	// beforeWrite, when set (by tests), runs once a job has begun writing;
	// afterChunk after each chunk handed to the blob writer, with the
	// bytes handed so far.
	beforeWrite func(ctx context.Context, job store.ExportJob)
	afterChunk  func(job store.ExportJob, written int64)
	// recovered is set once Recover has succeeded; recoverLogged is when
	// a failure was last logged.
	recovered     bool
	recoverLogged time.Time
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	closed        sync.Once
}

// NewExporter returns an Exporter; Start runs it.
func NewExporter(o ExporterOptions) *Exporter {
	if o.Writers <= 0 {
		o.Writers = DefaultExportWriters
	}
	if o.Poll <= 0 {
		o.Poll = DefaultExportPoll
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultExportMaxAttempts
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultExportRetryFor
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultExportRetryBackoff
	}
	if o.Lease <= 0 {
		o.Lease = DefaultExportLease
	}
	e := &Exporter{o: o, changes: o.DB, m: newExporterMetrics(o.Registerer, o.Log), wake: make(chan struct{}, 1),
		running: map[uuid.UUID]bool{}, turn: map[uuid.UUID]uint64{}, cleanups: map[string]*cleanup{}}
	if o.Shared != nil {
		e.changes = o.Shared
	}
	e.queueLog = o.Log.Sample(&zerolog.BurstSampler{Burst: queueErrorBurst, Period: time.Minute})
	return e
}

// Start starts the workers; they run until Close or until ctx is done.
// First they recover the jobs a previous process left in writing (see
// Recover), trying again at every poll while that fails (the bucket is
// unreachable, say), so that an unreachable bucket does not keep hookd
// from starting.
func (e *Exporter) Start(ctx context.Context) {
	ctx, e.cancel = context.WithCancel(ctx)
	for range e.o.Writers {
		e.wg.Add(1)
		go e.work(ctx)
	}
}

// Close stops the workers and waits for them. A job being written is
// abandoned: its blob write is aborted, so no file is reachable, and the
// job goes back to processing, to be written again at the next Start. No
// event changes.
func (e *Exporter) Close() {
	e.closed.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.wg.Wait()
	})
}

// Enqueue tells the workers that a job is waiting. It never blocks.
func (e *Exporter) Enqueue() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// work is one worker: it writes waiting jobs one after another and sleeps
// when there are none. It exits when ctx is done.
func (e *Exporter) work(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(e.o.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil && e.step(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

// step is one look for work of a worker: it recovers the interrupted
// jobs if it must, and writes the next waiting job. It reports whether it
// wrote one (the worker looks again at once).
func (e *Exporter) step(ctx context.Context) bool {
	if e.o.Shared != nil {
		return e.sharedStep(ctx)
	}
	if e.recover(ctx) != nil {
		return false
	}
	e.retryCleanups(ctx)
	job, ok, err := e.claim()
	if err != nil {
		e.o.Log.Error().Err(err).Msg("list export jobs")
	}
	if !ok {
		return false
	}
	e.Enqueue() // another idle worker may take the next job
	e.run(ctx, job)
	e.release(job.ID)
	return true
}

// recover runs Recover until it succeeds once. A failure is logged at
// most once a minute.
func (e *Exporter) recover(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.recovered {
		return nil
	}
	if _, err := e.Recover(ctx); err != nil {
		if ctx.Err() == nil && time.Since(e.recoverLogged) > time.Minute {
			e.recoverLogged = time.Now()
			e.o.Log.Error().Err(err).Msg("recover interrupted export jobs; trying again at every poll")
		}
		return err
	}
	e.recovered = true
	return nil
}

// claim picks the next job to write: among the jobs in processing that no
// worker runs and that do not wait for a retry, the oldest one of the customer with the lowest turn number
// (ties go to the oldest job). A customer seen waiting for the first time
// joins with the current turn, so it goes after those still waiting for
// their turn in this round; one whose jobs have all ended is forgotten.
func (e *Exporter) claim() (store.ExportJob, bool, error) {
	jobs, err := e.o.DB.ActiveExports()
	if err != nil {
		return store.ExportJob{}, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.o.DB.Now()
	active := make(map[uuid.UUID]bool, len(e.turn))
	var pick *store.ExportJob
	for i := range jobs { // oldest first
		j := &jobs[i]
		active[j.CustomerID] = true
		if j.State != store.ExportProcessing || e.running[j.ID] || now.Before(j.RetryAt) {
			continue
		}
		if _, ok := e.turn[j.CustomerID]; !ok {
			e.turn[j.CustomerID] = e.turns
		}
		if pick == nil || e.turn[j.CustomerID] < e.turn[pick.CustomerID] {
			pick = j
		}
	}
	for c := range e.turn {
		if !active[c] {
			delete(e.turn, c)
		}
	}
	if pick == nil {
		return store.ExportJob{}, false, nil
	}
	e.turns++
	e.turn[pick.CustomerID] = e.turns
	e.running[pick.ID] = true
	return *pick, true, nil
}

func (e *Exporter) release(id uuid.UUID) {
	e.mu.Lock()
	delete(e.running, id)
	e.mu.Unlock()
}

// RunOnce writes every job waiting in processing, one after another, and
// returns how many it completed. It is for tests and tools; a started
// Exporter does the same in the background.
func (e *Exporter) RunOnce(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		if err := e.recover(ctx); err != nil {
			return n, err
		}
		e.retryCleanups(ctx)
		job, ok, err := e.claim()
		if err != nil || !ok {
			return n, err
		}
		state := e.run(ctx, job)
		e.release(job.ID)
		if state == store.ExportCompleted {
			n++
		}
	}
	return n, ctx.Err()
}

// Recover handles the jobs left in writing by a process that stopped
// without finishing them (a crash, or a Close whose store update failed):
// it deletes whatever their key holds (a file committed just before the
// crash, before CompleteExport) and puts each job back to processing, or
// fails it once it began writing MaxAttempts times. No event changes. It
// returns how many jobs it handled. The workers call it before their first
// job; it must not run while a worker writes. It is for a store of one
// process: on a shared store (Shared) a job left writing is taken over
// only once its claim ran out.
func (e *Exporter) Recover(ctx context.Context) (int, error) {
	jobs, err := e.o.DB.ActiveExports()
	if err != nil {
		return 0, fmt.Errorf("recover export jobs: %w", err)
	}
	n := 0
	for _, j := range jobs {
		if j.State != store.ExportWriting {
			continue
		}
		if err := e.recoverJob(ctx, j); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// recoverJob handles job j, left in writing by a writer that stopped
// without finishing it: it deletes whatever its key holds and puts it
// back to processing, or fails it once it began writing MaxAttempts times.
func (e *Exporter) recoverJob(ctx context.Context, j store.ExportJob) error {
	if j.Key != "" {
		if err := blobsink.Delete(ctx, e.o.Bucket, j.Key); err != nil {
			e.m.blobErrors.WithLabelValues("cleanup").Inc()
			return fmt.Errorf("recover export %s: %w", j.ID, err)
		}
	}
	log := e.o.Log.Warn().Str("job", j.ID.String()).Str("subscription", j.SubscriptionID.String()).Int("attempts", j.Attempts)
	if j.Interruptions() >= e.o.MaxAttempts {
		if _, err := e.changes.FailExport(j.ID, store.FailureInterrupted, fmt.Sprintf("interrupted %d times while writing", j.Interruptions())); err != nil {
			return fmt.Errorf("recover export %s: %w", j.ID, err)
		}
		e.m.failed.Inc()
		log.Msg("export job was interrupted too often while writing; it failed")
		return nil
	}
	if _, err := e.changes.ResumeExport(j.ID); err != nil {
		return fmt.Errorf("recover export %s: %w", j.ID, err)
	}
	log.Msg("export job was interrupted while writing; it will be written again")
	return nil
}

// sharedStep is step on a shared store: the worker takes over a job that
// a process which died left writing, if there is one, or else claims and
// writes the next job of the cluster's fair queue.
func (e *Exporter) sharedStep(ctx context.Context) bool {
	e.retryCleanups(ctx)
	q := e.o.Shared
	if job, ok, err := q.AbandonedExport(e.o.Lease); err != nil {
		e.queueLog.Error().Err(err).Msg("look for export jobs left writing")
		return false
	} else if ok {
		if err := e.recoverJob(ctx, job); err != nil && ctx.Err() == nil {
			e.o.Log.Error().Err(err).Msg("take over an export job left writing; its claim runs out and it is tried again")
		}
		q.DropExportClaim(job.ID)
		e.Enqueue() // the job waits again, for any worker
		return true
	}
	start := e.o.DB.Now()
	job, ok, err := q.NextExport(e.o.Lease)
	if err != nil {
		e.queueLog.Error().Err(err).Msg("claim an export job")
	}
	if !ok {
		return false
	}
	e.Enqueue() // another idle worker may take the next job
	g := newClaimGuard(e.o.DB.Now, start, e.o.Lease)
	wctx, cancel := context.WithCancel(ctx)
	var renewals sync.WaitGroup
	renewals.Go(func() { e.keepClaim(wctx, job.ID, g, cancel) })
	e.runGuarded(wctx, job, g)
	cancel() // the renewals end with the write
	renewals.Wait()
	q.DropExportClaim(job.ID)
	return true
}

// claimGuard tells a writer whether it surely still holds its job's claim:
// until the lease of its last renewal, less a third of the lease for the
// clocks and the pauses, no other process can have taken the job over.
// Past that it touches neither the job nor its file.
type claimGuard struct {
	now   func() time.Time
	lease time.Duration
	mu    sync.Mutex
	until time.Time
}

func newClaimGuard(now func() time.Time, claimed time.Time, lease time.Duration) *claimGuard {
	g := &claimGuard{now: now, lease: lease}
	g.renewed(claimed)
	return g
}

// renewed records a renewal asked at at.
func (g *claimGuard) renewed(at time.Time) {
	g.mu.Lock()
	g.until = at.Add(g.lease - g.lease/3)
	g.mu.Unlock()
}

// lost records that the claim is another's.
func (g *claimGuard) lost() {
	g.mu.Lock()
	g.until = time.Time{}
	g.mu.Unlock()
}

// held reports whether the claim surely holds now. A nil guard (a store
// of one process) always holds.
func (g *claimGuard) held() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now().Before(g.until)
}

// keepClaim renews the claim on job id every third of the lease until ctx
// (the write's) ends. Once the claim is lost, or cannot be renewed before
// the guard gives it up, it cancels the write.
func (e *Exporter) keepClaim(ctx context.Context, id uuid.UUID, g *claimGuard, cancel context.CancelFunc) {
	t := time.NewTicker(e.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at := e.o.DB.Now()
		held, err := e.o.Shared.RenewExport(id, e.o.Lease)
		switch {
		case err == nil && held:
			g.renewed(at)
			continue
		case err == nil:
			g.lost()
			e.o.Log.Warn().Str("job", id.String()).Msg("export job's claim was taken over by another node; its write stops")
			cancel()
			return
		}
		e.o.Log.Warn().Err(err).Str("job", id.String()).Msg("renew the claim on an export job")
		if !g.held() {
			e.o.Log.Warn().Str("job", id.String()).Msg("export job's claim could not be renewed within its lease; its write stops and the job is left to the node that takes it over")
			cancel()
			return
		}
	}
}

// run writes job and returns the state it ended in. Errors are logged
// here; the job records the outcome.
func (e *Exporter) run(ctx context.Context, job store.ExportJob) store.ExportState {
	return e.runGuarded(ctx, job, nil)
}

// runGuarded is run by a writer whose claim on job g guards (nil: a store
// of one process). Once the claim is no longer surely held, the writer
// leaves the job and its file to the process that takes it over.
func (e *Exporter) runGuarded(ctx context.Context, job store.ExportJob, g *claimGuard) (state store.ExportState) {
	log := e.o.Log.With().Str("job", job.ID.String()).Str("customer", job.CustomerID.String()).
		Str("subscription", job.SubscriptionID.String()).Logger()
	enc, err := blobsink.ParseEncoding(job.Encoding)
	if err != nil {
		return e.fail(job.ID, log, "", store.FailureInternal, err)
	}
	key := blobsink.Key(job.CustomerID.String(), job.SubscriptionID.String(), job.ID.String(), enc)
	writing, err := e.changes.BeginExportWrite(job.ID, key)
	if err != nil {
		if j, gerr := e.o.DB.ExportByID(job.ID); gerr == nil && j.State == store.ExportProcessing {
			return e.fail(job.ID, log, "", store.FailureSubscriptionDeleted, err)
		}
		log.Debug().Err(err).Msg("export job is no longer waiting")
		return ""
	}
	job = writing
	e.m.started.Inc()
	if e.beforeWrite != nil {
		e.beforeWrite(ctx, job)
	}
	defer func() {
		if v := recover(); v != nil {
			state = e.fail(job.ID, log, key, store.FailureInternal, fmt.Errorf("panic: %v", v))
		}
	}()
	// The upload of an earlier attempt that could not be aborted then
	// goes first (also after a restart, which forgets the pending
	// removals); should it fail again, it stays pending.
	if job.BlobErrors > 0 {
		e.removeFile(log, key)
	} else {
		e.cleanPending(log, key)
	}
	start := time.Now()
	info, err := e.write(ctx, job, key, enc, g)
	if err != nil {
		var be *blobError
		switch {
		case !g.held():
			return e.leave(log, err)
		case ctx.Err() != nil:
			return e.abandon(job.ID, log, key)
		case errors.As(err, &be):
			return e.retryOrFail(job, log, key, be.err)
		}
		return e.fail(job.ID, log, key, store.FailureInternal, err)
	}
	if _, err := e.changes.CompleteExport(job.ID, store.ExportResult{Key: info.Key, Size: info.Size, ETag: info.ETag, EventCount: info.Lines}); err != nil {
		if !g.held() {
			return e.leave(log, err)
		}
		reason := store.FailureInternal
		if j, gerr := e.o.DB.ExportByID(job.ID); gerr == nil && j.State == store.ExportWriting && !e.subscriptionExists(job) {
			reason = store.FailureSubscriptionDeleted
		}
		return e.fail(job.ID, log, key, reason, fmt.Errorf("complete: %w", err))
	}
	e.m.completed.Inc()
	e.m.bytes.Add(float64(info.Size))
	e.m.events.Add(float64(info.Lines))
	log.Info().Int64("events", info.Lines).Int64("bytes", info.Size).Str("encoding", enc.String()).
		Dur("took", time.Since(start)).Msg("export completed")
	return store.ExportCompleted
}

// leave gives up a job whose claim is no longer surely held, after the
// write or its completion failed with cause: the job and its file are left
// to the process that takes the job over (or has taken it over), which
// removes the file; nothing of the job changes here.
func (e *Exporter) leave(log zerolog.Logger, cause error) store.ExportState {
	e.m.interrupted.Inc()
	log.Warn().Err(cause).Msg("export job's claim was lost while writing; the job is left to the node that takes it over")
	return ""
}

// errClaimNotHeld stops a write whose claim is no longer surely held,
// before its commit.
var errClaimNotHeld = errors.New("the claim on the export job is no longer held")

// blobError is an error of the blob store while writing a file: the job
// is retried.
type blobError struct{ err error }

func (b *blobError) Error() string { return b.err.Error() }
func (b *blobError) Unwrap() error { return b.err }

// subscriptionExists reports whether job's subscription is still stored.
func (e *Exporter) subscriptionExists(job store.ExportJob) bool {
	_, err := e.o.DB.Subscription(job.CustomerID, job.SubscriptionID)
	return err == nil
}

// write streams job's events to key and commits the file, unless g (when
// not nil) no longer holds the job's claim by then. Errors of the blob
// store are *blobError.
func (e *Exporter) write(ctx context.Context, job store.ExportJob, key string, enc blobsink.Encoding, g *claimGuard) (blobsink.Info, error) {
	w, err := blobsink.NewWriter(ctx, e.o.Bucket, key, enc)
	if err != nil {
		return blobsink.Info{}, &blobError{err}
	}
	var since time.Time
	if e.o.Retention > 0 {
		since = e.o.DB.Now().Add(-e.o.Retention)
	}
	lb := newLineBuilder(e.o.PublicURL, job.CustomerID)
	var count, written int64
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return blobsink.Info{}, err
		}
		lb.reset()
		next, done, err := e.o.DB.ScanExport(job, after, since, exportChunk, lb.add)
		if err != nil {
			w.Abort()
			return blobsink.Info{}, fmt.Errorf("read events: %w", err)
		}
		if _, err := w.Write(lb.buf); err != nil {
			w.Abort()
			return blobsink.Info{}, &blobError{err}
		}
		count += lb.lines
		written += int64(len(lb.buf))
		if e.afterChunk != nil {
			e.afterChunk(job, written)
		}
		if done {
			break
		}
		after = next
	}
	if !g.held() {
		w.Abort()
		return blobsink.Info{}, errClaimNotHeld
	}
	info, err := w.Close()
	if err != nil {
		return blobsink.Info{}, &blobError{err}
	}
	if info.Lines != count {
		return info, fmt.Errorf("wrote %d lines for %d events", info.Lines, count)
	}
	return info, nil
}

// fail ends job id in failed, for reason (one of store's Failure* values,
// which the customer sees), after removing anything stored under key. The
// cause is logged with the job's id and kept in the job for the operator.
func (e *Exporter) fail(id uuid.UUID, log zerolog.Logger, key, reason string, cause error) store.ExportState {
	e.removeFile(log, key)
	if _, err := e.changes.FailExport(id, reason, cause.Error()); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error().Err(err).AnErr("cause", cause).Msg("export failed and could not be marked failed")
		return ""
	}
	e.m.failed.Inc()
	log.Error().Err(cause).Str("failureReason", reason).Msg("export failed")
	return store.ExportFailed
}

// retryOrFail handles a write of job that failed on the blob store with
// cause: the file and the upload are removed (or left pending, see
// cleanPending), and the job waits in processing for its next attempt,
// with a backoff that doubles from RetryBackoff up to a minute, or fails
// with FailureStorageUnavailable once RetryFor has passed since its first
// blob error. The last wait ends at that bound, so the last attempt is
// made then.
func (e *Exporter) retryOrFail(job store.ExportJob, log zerolog.Logger, key string, cause error) store.ExportState {
	e.m.blobErrors.WithLabelValues("write").Inc()
	now := e.o.DB.Now()
	since := job.RetryingSince
	if since.IsZero() {
		since = now
	}
	deadline := since.Add(e.o.RetryFor)
	if !now.Before(deadline) {
		return e.fail(job.ID, log, key, store.FailureStorageUnavailable,
			fmt.Errorf("the blob store failed %d writes since %s: %w", job.BlobErrors+1, since.Format(time.RFC3339), cause))
	}
	e.removeFile(log, key)
	wait := e.o.RetryBackoff
	for i := 0; i < job.BlobErrors && wait < maxExportRetryBackoff; i++ {
		wait *= 2
	}
	at := e.o.DB.Now().Add(min(wait, maxExportRetryBackoff))
	if at.After(deadline) {
		at = deadline
	}
	if _, err := e.changes.RetryExport(job.ID, at, cause.Error()); err != nil {
		log.Error().Err(err).AnErr("cause", cause).Msg("export could not be put back for a retry; it is recovered at the next start")
		return ""
	}
	e.m.retried.Inc()
	log.Warn().Err(cause).Int("blobErrors", job.BlobErrors+1).Time("retryAt", at).Time("failsAfter", deadline).
		Msg("the blob store failed the export's write; it is retried")
	return store.ExportProcessing
}

// abandon puts job id back to processing after its write was cut short by
// Close; the write was aborted, so nothing is stored under key.
func (e *Exporter) abandon(id uuid.UUID, log zerolog.Logger, key string) store.ExportState {
	e.removeFile(log, key)
	if _, err := e.changes.ResumeExport(id); err != nil {
		log.Warn().Err(err).Msg("interrupted export could not be put back; it is recovered at the next start")
		return ""
	}
	e.m.interrupted.Inc()
	log.Info().Msg("export interrupted by shutdown; it will be written again")
	return store.ExportProcessing
}

// cleanup is a key whose file or upload removal failed.
type cleanup struct {
	log      zerolog.Logger
	tries    int
	next     time.Time // when to try again
	deadline time.Time // after it (DefaultOrphanAge) the janitor's sweep is left to do it
}

// removeFile deletes key (when not empty) and aborts its unfinished
// multipart uploads, with a context of its own, since the job's context
// may be done. The blob writer aborts its upload itself when it fails, but
// it cannot while the blob store is unreachable: then the key is kept in
// cleanups and tried again with backoff (cleanPending), so that the parts
// go as soon as the store answers, not at the janitor's sweep an hour
// later.
func (e *Exporter) removeFile(log zerolog.Logger, key string) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := e.removeNow(ctx, key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.cleanups, key)
		return
	}
	e.m.blobErrors.WithLabelValues("cleanup").Inc()
	c := e.cleanups[key]
	now := e.o.DB.Now()
	if c == nil {
		c = &cleanup{log: log, deadline: now.Add(DefaultOrphanAge)}
		e.cleanups[key] = c
	}
	c.tries++
	c.next = now.Add(min(e.o.RetryBackoff<<min(c.tries-1, 16), maxExportRetryBackoff))
	if !now.Before(c.deadline) {
		delete(e.cleanups, key)
		log.Warn().Err(err).Str("key", key).Msg("could not remove the file or upload of an unfinished export; the janitor removes it later")
		return
	}
	log.Warn().Err(err).Str("key", key).Time("retryAt", c.next).Msg("could not remove the file or upload of an unfinished export; trying again")
}

// removeNow deletes key and aborts its unfinished uploads.
func (e *Exporter) removeNow(ctx context.Context, key string) error {
	if err := blobsink.Delete(ctx, e.o.Bucket, key); err != nil {
		return err
	}
	n, err := e.o.Uploads.AbortKey(ctx, key)
	if n > 0 {
		e.o.Log.Info().Str("key", key).Int("uploads", n).Msg("aborted the unfinished upload of a failed export write")
	}
	return err
}

// cleanPending tries again the pending removal of key, if there is one.
func (e *Exporter) cleanPending(log zerolog.Logger, key string) {
	e.mu.Lock()
	_, ok := e.cleanups[key]
	e.mu.Unlock()
	if ok {
		e.removeFile(log, key)
	}
}

// retryCleanups tries again the pending removals that are due.
func (e *Exporter) retryCleanups(ctx context.Context) {
	now := e.o.DB.Now()
	e.mu.Lock()
	var due []string
	logs := map[string]zerolog.Logger{}
	for k, c := range e.cleanups {
		if !now.Before(c.next) {
			due = append(due, k)
			logs[k] = c.log
			c.next = now.Add(maxExportRetryBackoff) // taken: another worker leaves it
		}
	}
	e.mu.Unlock()
	for _, k := range due {
		if ctx.Err() != nil {
			return
		}
		e.removeFile(logs[k], k)
	}
}
