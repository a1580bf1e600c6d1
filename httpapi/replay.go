package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"hookd/blobsink"
	"hookd/store"
	"hookd/wire"
)

// Limits of the replay of an export job's file.
const (
	// replayBatch is the number of lines recorded per transaction.
	replayBatch = 1000
	// replayBudgetShare divides the API timeout into the time after which
	// a replay of an export file starts no further batch and answers with
	// what it did (complete false, and the line to continue from).
	replayBudgetShare = 2
	// replayLineOverhead is what a line may hold besides its event object:
	// the claims (iss, iat, jti, aud, txn, toe, the type).
	replayLineOverhead = 64 << 10
)

// claimMembers are the members of a SET claims object (an export line).
var claimMembers = [...]string{"iss", "iat", "jti", "aud", "txn", "toe", "events"}

// lineKind names what a line must be, for problems.
func (p *intakeParser) lineKind() string {
	if p.claims {
		return "must be a SET claims object (an export line)"
	}
	return "must be a JSON event object"
}

// parseClaims validates an export line (valid JSON): the claims of a
// Security Event Token as hookd signs them,
//
//	{"iss":..,"iat":..,"jti":"<uuid>","aud":[..],"txn":"<uuid>","toe":..,"events":{"<type>":{..}}}
//
// (txn optional), and records it as the event it carried: the jti is the
// event's id, the single member of events its type and object, txn and toe
// as they were. iss, iat and aud are checked for their form only: the
// event is signed again, by the customer's current key for the
// subscription's current endpoint.
func (p *intakeParser) parseClaims(data []byte, line int) {
	before := p.badCount
	var vals [len(claimMembers)][]byte
	ok := members(data, func(key, val []byte) {
		for i, name := range claimMembers {
			if string(key) == name {
				if vals[i] != nil {
					p.problem(line, name, "appears more than once")
				}
				vals[i] = val
				return
			}
		}
		p.problem(line, string(key), "is not a claim of hookd's tokens")
	})
	if !ok {
		p.problem(line, "", p.lineKind())
		return
	}
	iss, iat, jti, aud, txn, toe, events := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6]
	for i, v := range vals {
		if v == nil && claimMembers[i] != "txn" {
			p.problem(line, claimMembers[i], "is required in a SET claims object")
		}
	}
	if p.badCount > before {
		return
	}
	if _, isString := jsonString(iss); !isString {
		p.problem(line, "iss", "must be a string")
	}
	if !number(iat) {
		p.problem(line, "iat", "must be a number of seconds since 1970")
	}
	if !stringArray(aud) {
		p.problem(line, "aud", "must be a list of strings")
	}
	var ne store.NewEvent
	ne.ID = p.uuidField(line, "jti", jti)
	if txn != nil && string(txn) != "null" {
		ne.Txn = p.uuidField(line, "txn", txn).String()
	}
	f, err := strconv.ParseFloat(string(toe), 64)
	if err != nil || f < 0 || f > maxToe || toe[0] == '"' {
		p.problem(line, "toe", "must be a number of seconds since 1970")
	}
	ne.Toe = int64(f)
	var event []byte
	n := 0
	if !members(events, func(key, val []byte) {
		n++
		ne.Type, event = string(key), val
	}) || n != 1 {
		p.problem(line, "events", "must be an object with one member, the event type")
		return
	}
	if !knownEventType(ne.Type) {
		p.problem(line, "events", "must name one of the event types "+join(EventTypes))
		return
	}
	p.checkEvent(event, ne.Type, line)
	if p.badCount > before {
		return
	}
	ne.Payload = event
	if bytes.ContainsAny(event, " \t\r\n") {
		var b bytes.Buffer
		_ = json.Compact(&b, event) // valid JSON: cannot fail
		ne.Payload = b.Bytes()
	}
	if p.maxEvent > 0 && len(ne.Payload) > p.maxEvent {
		p.tooLarge(line, len(ne.Payload))
		return
	}
	p.list = append(p.list, ne)
}

// number reports whether a raw JSON value is a number.
func number(val []byte) bool {
	if len(val) == 0 {
		return false
	}
	_, err := strconv.ParseFloat(string(val), 64)
	return err == nil
}

// recordReplay records events for subscription sid of customer cid, their
// jtis scoped by the subscription (see store.Intake.Scope), and tells the
// dispatcher. The subscription's type list and filter do not apply: the
// file is the selection.
func (s *Server) recordReplay(cid, sid uuid.UUID, events []store.NewEvent) (store.IntakeResult, error) {
	deliveries := make([]store.Delivery, len(events))
	for i := range events {
		deliveries[i] = store.Delivery{SubscriptionID: sid, Event: i}
	}
	res, err := s.DB.RecordIntake(store.Intake{CustomerID: cid, Scope: sid, Events: events, Deliveries: deliveries})
	if err != nil {
		return res, err
	}
	if s.Hooks.Notify != nil {
		s.Hooks.Notify(dueSubscriptions(res.Added)...)
	}
	return res, nil
}

// replaySubscription returns the subscription the path names; one of
// another customer, or none, is 404.
func (s *Server) replaySubscription(r *http.Request, cid uuid.UUID) (store.Subscription, error) {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return store.Subscription{}, err
	}
	sub, err := s.DB.Subscription(cid, sid)
	if errors.Is(err, store.ErrNotFound) {
		return sub, errNotFound("no subscription " + sid.String() + " of customer " + cid.String())
	}
	return sub, err
}

// replayLines records the export lines of an application/x-ndjson body
// (the operator's hookd replay) for one subscription: 202 with what was
// recorded and the jtis a replay to it recorded before. A request with any
// bad line is refused whole, naming its lines, as the intake does.
func (s *Server) replayLines(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	if low, _ := s.diskLow(); low {
		return store.ErrNoSpace
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != mediaNDJSON {
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "send export lines, one per line, as "+mediaNDJSON)
	}
	sub, err := s.replaySubscription(r, cid)
	if err != nil {
		return err
	}
	release, err := s.intakeMem.reserve(r.ContentLength, s.MaxIntakeBody)
	if err != nil {
		return err
	}
	defer release()
	body, err := readIntakeBody(w, r, s.MaxIntakeBody)
	if err != nil {
		return err
	}
	p := intakeParser{maxEvent: s.MaxEventSize, claims: true}
	if err := p.parseLines(body, 0); err != nil {
		return err
	}
	if err := p.refusal(); err != nil {
		return err
	}
	events := p.events()
	res, err := s.recordReplay(cid, sub.ID, events)
	if err != nil {
		return err
	}
	out := wire.ReplayResult{Accepted: len(events), Recorded: len(res.Added), EventIDs: make([]uuid.UUID, 0, len(res.Added)), Duplicates: make([]uuid.UUID, 0, len(res.Duplicates))}
	for _, a := range res.Added {
		out.EventIDs = append(out.EventIDs, a.ID)
	}
	for _, i := range res.Duplicates {
		out.Duplicates = append(out.Duplicates, events[i].ID)
	}
	return writeJSON(w, http.StatusAccepted, out)
}

// replayExport records the events of a completed export job's file for
// the job's subscription, as replayLines does, reading the file from the
// bucket in batches of replayBatch lines, from line ?fromLine= (default
// 1). It starts no batch once half the API timeout has passed: the answer
// then says complete false and the nextLine to send as fromLine; a repeat
// from an earlier line is safe too, the lines recorded before counting as
// duplicates. A bad line stops it with its line number (the batches before
// it are recorded).
func (s *Server) replayExport(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	start := time.Now()
	job, err := s.exportJob(r, cid)
	if err != nil {
		return err
	}
	from := 1
	if v := r.URL.Query().Get("fromLine"); v != "" {
		if from, err = strconv.Atoi(v); err != nil || from < 1 {
			return errBadRequest("invalid-query", "fromLine must be a line number, from 1")
		}
	}
	if job.State != store.ExportCompleted {
		return problem(http.StatusConflict, "export-not-completed", "export "+job.ID.String()+" has no file to replay: it is "+string(job.State))
	}
	if s.Exports.Bucket == nil {
		return errNotFound("export " + job.ID.String() + " has no file to replay")
	}
	if low, _ := s.diskLow(); low {
		return store.ErrNoSpace
	}
	enc, err := blobsink.ParseEncoding(job.Encoding)
	if err != nil {
		return err
	}
	f, err := blobsink.NewReader(r.Context(), s.Exports.Bucket, job.Key, enc)
	if errors.Is(err, blobsink.ErrNotFound) {
		return errNotFound("the file of export " + job.ID.String() + " is no longer available")
	} else if err != nil {
		return err
	}
	defer f.Close()

	budget := s.replayBudget
	if budget <= 0 {
		budget = s.APITimeout / replayBudgetShare
	}
	var out wire.ExportReplay
	maxLine := s.MaxEventSize + replayLineOverhead
	br := bufio.NewReaderSize(f, 64<<10)
	var batch []byte
	first, lineNo := from, 0 // the file's line number of the batch's first line; the last line read
	flush := func() error {
		if len(bytes.TrimSpace(batch)) > 0 {
			p := intakeParser{maxEvent: s.MaxEventSize, claims: true}
			err := p.parseLines(batch, 0)
			if err == nil {
				err = p.refusal()
			}
			if err != nil {
				return fileLines(err, first-1)
			}
			res, err := s.recordReplay(cid, job.SubscriptionID, p.events())
			if err != nil {
				return err
			}
			out.Recorded += int64(len(res.Added))
			out.Duplicates += int64(len(res.Duplicates))
		}
		out.Lines += int64(lineNo - first + 1)
		batch, first = batch[:0], lineNo+1
		return nil
	}
	for {
		line, err := readBoundedLine(br, maxLine)
		if errors.Is(err, errLineTooLong) {
			return errBadRequest("line-too-long", "line "+strconv.Itoa(lineNo+1)+" of the export file is longer than "+strconv.Itoa(maxLine)+" bytes")
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		eof := errors.Is(err, io.EOF)
		if len(line) > 0 || !eof {
			lineNo++
			if lineNo >= from {
				batch = append(append(batch, line...), '\n')
			}
		}
		if eof {
			if lineNo < from {
				return errBadRequest("invalid-query", "fromLine "+strconv.Itoa(from)+" is past the file's end: it has "+strconv.Itoa(lineNo)+" lines")
			}
			if err := flush(); err != nil {
				return err
			}
			out.Complete = true
			break
		}
		if lineNo >= from && lineNo-first+1 >= replayBatch {
			if err := flush(); err != nil {
				return err
			}
			if time.Since(start) >= budget {
				if _, err := br.Peek(1); errors.Is(err, io.EOF) {
					out.Complete = true
				} else {
					out.NextLine = int64(lineNo) + 1
				}
				break
			}
		}
	}
	return writeJSON(w, http.StatusAccepted, out)
}

// errLineTooLong reports a line longer than its limit.
var errLineTooLong = errors.New("line too long")

// readBoundedLine returns the next line of br without its newline, or
// errLineTooLong when it is longer than limit bytes; io.EOF comes with the
// last line (perhaps empty).
func readBoundedLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > limit+1 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

// fileLines renumbers the lines a batch's problem names by offset, the
// file's lines before the batch.
func fileLines(err error, offset int) error {
	var e *Error
	if !errors.As(err, &e) || offset == 0 {
		return err
	}
	renumber := func(ps []ParamError) {
		for i := range ps {
			if ps[i].Line > 0 {
				old := "line " + strconv.Itoa(ps[i].Line)
				ps[i].Line += offset
				if rest, ok := strings.CutPrefix(ps[i].Name, old); ok && (rest == "" || strings.HasPrefix(rest, ":")) {
					ps[i].Name = "line " + strconv.Itoa(ps[i].Line) + rest
				}
			}
		}
	}
	renumber(e.Params)
	return e
}
