package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// adminStream is admin for long responses: the admin token is checked the
// same way, but the handler is not bounded by the API timeout.
func (s *Server) adminStream(h handlerFunc) http.Handler {
	return s.handleStream(func(w http.ResponseWriter, r *http.Request) error {
		if err := s.authAdmin(r); err != nil {
			return err
		}
		return h(w, r)
	})
}

// hotCopier is a store that can stream a consistent copy of itself while
// it serves (the bolt backend). Other backends have their own tools
// (pg_dump for PostgreSQL), and the backup route says so.
type hotCopier interface {
	BackupTo(open func(size int64) (io.Writer, error)) (int64, error)
}

// backup streams a consistent copy of the store (bbolt's hot backup) while
// hookd keeps serving: GET /admin/backup answers application/octet-stream
// with the copy's exact Content-Length. The copy is a bbolt file that
// replaces <data>/hookd.db to restore. If the copy fails after the headers
// were sent, the connection is cut so that the client sees a short body.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	hc, ok := s.DB.(hotCopier)
	if !ok {
		return problem(http.StatusNotImplemented, "backup-not-supported",
			"this store has no hot copy through hookd: back up the database with its own tools (pg_dump for PostgreSQL)")
	}
	start := time.Now()
	name := "hookd-" + start.UTC().Format("20060102T150405Z") + ".db"
	started := false
	n, err := hc.BackupTo(func(size int64) (io.Writer, error) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
		return w, nil
	})
	if err != nil && !started {
		return err
	}
	if err != nil {
		s.Log.Warn().Err(err).Int64("bytes", n).Msg("backup cut short")
		panic(http.ErrAbortHandler)
	}
	s.Log.Info().Int64("bytes", n).Dur("took", time.Since(start)).Msg("backup streamed")
	return nil
}
