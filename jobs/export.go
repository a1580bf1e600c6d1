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
	DefaultExportWorkers     = 1
	DefaultExportPoll        = time.Second
	DefaultExportMaxAttempts = 3
	// exportChunk is the number of failure sequences read per store
	// transaction while writing a file.
	exportChunk = 5000
	// cleanupTimeout bounds the removal of an abandoned file.
	cleanupTimeout = 30 * time.Second
)

// ExporterOptions configure an Exporter.
type ExporterOptions struct {
	DB     *store.DB
	Bucket *blob.Bucket
	Log    zerolog.Logger
	// PublicURL is the base of the tokens' issuer, without trailing slash.
	PublicURL string
	// Retention leaves out events that failed longer ago (0: none left out).
	Retention time.Duration
	// Workers is the number of jobs written at once.
	Workers int
	// Poll is how often the store is checked for jobs besides Enqueue.
	Poll time.Duration
	// MaxAttempts is how many times a job may begin writing (a crash or a
	// shutdown interrupts a write) before it fails.
	MaxAttempts int
	// Registerer receives the export metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Exporter writes export jobs in the background. Jobs are created in the
// store by the API; Enqueue makes the Exporter look at once, and it also
// looks every Poll. A job is written by one worker from start to end:
// BeginExportWrite, the file streamed to the bucket, the blob writer's
// Close (the commit), then CompleteExport.
type Exporter struct {
	o       ExporterOptions
	m       *exporterMetrics
	wake    chan struct{}
	mu      sync.Mutex
	running map[uuid.UUID]bool
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
	if o.Workers <= 0 {
		o.Workers = DefaultExportWorkers
	}
	if o.Poll <= 0 {
		o.Poll = DefaultExportPoll
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultExportMaxAttempts
	}
	return &Exporter{o: o, m: newExporterMetrics(o.Registerer, o.Log), wake: make(chan struct{}, 1), running: map[uuid.UUID]bool{}}
}

// Start starts the workers; they run until Close or until ctx is done.
// First they recover the jobs a previous process left in writing (see
// Recover), trying again at every poll while that fails (the bucket is
// unreachable, say), so that an unreachable bucket does not keep hookd
// from starting.
func (e *Exporter) Start(ctx context.Context) {
	ctx, e.cancel = context.WithCancel(ctx)
	for range e.o.Workers {
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
		for ctx.Err() == nil {
			if e.recover(ctx) != nil {
				break
			}
			job, ok, err := e.claim()
			if err != nil {
				e.o.Log.Error().Err(err).Msg("list export jobs")
			}
			if !ok {
				break
			}
			e.Enqueue() // another idle worker may take the next job
			e.run(ctx, job)
			e.release(job.ID)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
	}
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

// claim picks the oldest job in processing that no worker runs.
func (e *Exporter) claim() (store.ExportJob, bool, error) {
	jobs, err := e.o.DB.ActiveExports()
	if err != nil {
		return store.ExportJob{}, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range jobs {
		if j.State == store.ExportProcessing && !e.running[j.ID] {
			e.running[j.ID] = true
			return j, true, nil
		}
	}
	return store.ExportJob{}, false, nil
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
// job; it must not run while a worker writes.
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
		if j.Key != "" {
			if err := blobsink.Delete(ctx, e.o.Bucket, j.Key); err != nil {
				return n, fmt.Errorf("recover export %s: %w", j.ID, err)
			}
		}
		log := e.o.Log.Warn().Str("job", j.ID.String()).Str("subscription", j.SubscriptionID.String()).Int("attempts", j.Attempts)
		if j.Attempts >= e.o.MaxAttempts {
			if _, err := e.o.DB.FailExport(j.ID, fmt.Sprintf("interrupted %d times while writing", j.Attempts)); err != nil {
				return n, fmt.Errorf("recover export %s: %w", j.ID, err)
			}
			e.m.failed.Inc()
			log.Msg("export job was interrupted too often while writing; it failed")
		} else {
			if _, err := e.o.DB.ResumeExport(j.ID); err != nil {
				return n, fmt.Errorf("recover export %s: %w", j.ID, err)
			}
			log.Msg("export job was interrupted while writing; it will be written again")
		}
		n++
	}
	return n, nil
}

// run writes job and returns the state it ended in. Errors are logged
// here; the job records the outcome.
func (e *Exporter) run(ctx context.Context, job store.ExportJob) (state store.ExportState) {
	log := e.o.Log.With().Str("job", job.ID.String()).Str("customer", job.CustomerID.String()).
		Str("subscription", job.SubscriptionID.String()).Logger()
	enc, err := blobsink.ParseEncoding(job.Encoding)
	if err != nil {
		return e.fail(job.ID, log, "", err)
	}
	key := blobsink.Key(job.CustomerID.String(), job.SubscriptionID.String(), job.ID.String(), enc)
	writing, err := e.o.DB.BeginExportWrite(job.ID, key)
	if err != nil {
		if j, gerr := e.o.DB.ExportByID(job.ID); gerr == nil && j.State == store.ExportProcessing {
			return e.fail(job.ID, log, "", err) // the subscription is gone
		}
		log.Debug().Err(err).Msg("export job is no longer waiting")
		return ""
	}
	job = writing
	e.m.started.Inc()
	defer func() {
		if v := recover(); v != nil {
			state = e.fail(job.ID, log, key, fmt.Errorf("panic: %v", v))
		}
	}()
	start := time.Now()
	info, err := e.write(ctx, job, key, enc)
	if err != nil {
		if ctx.Err() != nil {
			return e.abandon(job.ID, log, key)
		}
		return e.fail(job.ID, log, key, err)
	}
	if _, err := e.o.DB.CompleteExport(job.ID, store.ExportResult{Key: info.Key, Size: info.Size, ETag: info.ETag, EventCount: info.Lines}); err != nil {
		return e.fail(job.ID, log, key, fmt.Errorf("complete: %w", err))
	}
	e.m.completed.Inc()
	e.m.bytes.Add(float64(info.Size))
	e.m.events.Add(float64(info.Lines))
	log.Info().Int64("events", info.Lines).Int64("bytes", info.Size).Str("encoding", enc.String()).
		Dur("took", time.Since(start)).Msg("export completed")
	return store.ExportCompleted
}

// write streams job's events to key and commits the file.
func (e *Exporter) write(ctx context.Context, job store.ExportJob, key string, enc blobsink.Encoding) (blobsink.Info, error) {
	w, err := blobsink.NewWriter(ctx, e.o.Bucket, key, enc)
	if err != nil {
		return blobsink.Info{}, err
	}
	var since time.Time
	if e.o.Retention > 0 {
		since = e.o.DB.Now().Add(-e.o.Retention)
	}
	lb := newLineBuilder(e.o.PublicURL, job.CustomerID)
	var count int64
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
			return blobsink.Info{}, err
		}
		count += lb.lines
		if done {
			break
		}
		after = next
	}
	info, err := w.Close()
	if err != nil {
		return blobsink.Info{}, err
	}
	if info.Lines != count {
		return info, fmt.Errorf("wrote %d lines for %d events", info.Lines, count)
	}
	return info, nil
}

// fail ends job id in failed after removing anything stored under key.
func (e *Exporter) fail(id uuid.UUID, log zerolog.Logger, key string, cause error) store.ExportState {
	e.removeFile(log, key)
	if _, err := e.o.DB.FailExport(id, cause.Error()); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error().Err(err).AnErr("cause", cause).Msg("export failed and could not be marked failed")
		return ""
	}
	e.m.failed.Inc()
	log.Error().Err(cause).Msg("export failed")
	return store.ExportFailed
}

// abandon puts job id back to processing after its write was cut short by
// Close; the write was aborted, so nothing is stored under key.
func (e *Exporter) abandon(id uuid.UUID, log zerolog.Logger, key string) store.ExportState {
	e.removeFile(log, key)
	if _, err := e.o.DB.ResumeExport(id); err != nil {
		log.Warn().Err(err).Msg("interrupted export could not be put back; it is recovered at the next start")
		return ""
	}
	e.m.interrupted.Inc()
	log.Info().Msg("export interrupted by shutdown; it will be written again")
	return store.ExportProcessing
}

// removeFile deletes key (when not empty) with a context of its own, since
// the job's context may be done.
func (e *Exporter) removeFile(log zerolog.Logger, key string) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := blobsink.Delete(ctx, e.o.Bucket, key); err != nil {
		log.Warn().Err(err).Str("key", key).Msg("could not remove the file of an unfinished export; the janitor removes it later")
	}
}
