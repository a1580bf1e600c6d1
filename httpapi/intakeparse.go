package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/wire"
)

// intakeParser validates intake events and collects them with every
// problem found. Events are scanned in place, without decoding them into
// maps: the intake takes tens of thousands of events per second.
type intakeParser struct {
	maxEvent int // the largest event object, compacted, in bytes; 0: no limit
	// claims makes the lines export lines (SET claims) rather than
	// intake events: see parseClaims.
	claims bool

	list       []store.NewEvent
	bad        []ParamError
	badCount   int
	large      []ParamError // events over maxEvent
	largeCount int
}

// tooLarge records that the event on line (0 for an application/json
// body) is larger than maxEvent.
func (p *intakeParser) tooLarge(line, size int) {
	p.largeCount++
	if len(p.large) >= maxIntakeProblems {
		return
	}
	name := "event"
	if line > 0 {
		name = "line " + strconv.Itoa(line) + ": event"
	}
	p.large = append(p.large, ParamError{Name: name, Reason: "is " + strconv.Itoa(size) + " bytes, more than the " + strconv.Itoa(p.maxEvent) + " an event may hold"})
}

// problem records a problem of field (empty: the whole event) of the event
// on line (0 for an application/json body).
func (p *intakeParser) problem(line int, field, reason string) {
	p.badCount++
	if len(p.bad) >= maxIntakeProblems {
		return
	}
	name := field
	switch {
	case line > 0 && field == "":
		name = "line " + strconv.Itoa(line)
	case line > 0:
		name = "line " + strconv.Itoa(line) + ": " + field
	case field == "":
		name = "body"
	}
	p.bad = append(p.bad, ParamError{Name: name, Reason: reason, Line: line, Field: field})
}

// events returns the parsed events. Their payloads point into the request
// body (or a compacted copy); the store copies them.
func (p *intakeParser) events() []store.NewEvent { return p.list }

// parseOne parses an application/json body: exactly one event.
func (p *intakeParser) parseOne(body []byte, now int64) error {
	if !json.Valid(body) {
		return errBadRequest("invalid-request-body", "the request body must be one JSON event object")
	}
	if !textValid(body) {
		p.invalidUTF8(body, 0)
		return nil
	}
	p.parseEvent(bytes.TrimSpace(body), 0, now)
	return nil
}

// parseLines parses an application/x-ndjson body: one event per line,
// blank lines ignored, lines numbered from 1.
func (p *intakeParser) parseLines(body []byte, now int64) error {
	validUTF8 := textValid(body) // once for the whole body: lines are checked only when it fails
	lineNo := 0
	count := 0
	for len(body) > 0 {
		lineNo++
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		count++
		if count > wire.MaxIntakeEvents {
			return errBadRequest("too-many-events", "a request carries at most "+strconv.Itoa(wire.MaxIntakeEvents)+" events")
		}
		if p.list == nil {
			p.list = make([]store.NewEvent, 0, min(bytes.Count(body, []byte{'\n'})+1, wire.MaxIntakeEvents))
		}
		if !json.Valid(line) {
			p.problem(lineNo, "", p.lineKind())
			continue
		}
		if !validUTF8 && !textValid(line) {
			p.invalidUTF8(line, lineNo)
			continue
		}
		if p.claims {
			p.parseClaims(line, lineNo)
		} else {
			p.parseEvent(line, lineNo, now)
		}
	}
	if count == 0 {
		return errBadRequest("invalid-request-body", "the request holds no event")
	}
	return nil
}

// invalidUTF8 records the member of the event on line (valid JSON, not
// valid UTF-8) that holds invalid UTF-8.
func (p *intakeParser) invalidUTF8(data []byte, line int) {
	path, _ := invalidUTF8(data)
	p.problem(line, joinPath(path), reasonUTF8)
}

// parseEvent validates the event on line (0 for an application/json
// body); data is valid JSON.
func (p *intakeParser) parseEvent(data []byte, line int, now int64) {
	before := p.badCount
	var typ, event, txn, toe, id []byte
	var seenType, seenEvent, seenTxn, seenToe, seenID bool
	once := func(seen *bool, key string) bool {
		if *seen {
			p.problem(line, key, "appears more than once")
			return false
		}
		*seen = true
		return true
	}
	ok := members(data, func(key, val []byte) {
		switch string(key) {
		case "type":
			if once(&seenType, "type") {
				typ = val
			}
		case "event":
			if once(&seenEvent, "event") {
				event = val
			}
		case "txn":
			if once(&seenTxn, "txn") {
				txn = val
			}
		case "toe":
			if once(&seenToe, "toe") {
				toe = val
			}
		case "id":
			if once(&seenID, "id") {
				id = val
			}
		default:
			p.problem(line, string(key), "is not an event field")
		}
	})
	if !ok {
		p.problem(line, "", "must be a JSON event object")
		return
	}
	ne := store.NewEvent{Toe: now}
	switch t, isString := jsonString(typ); {
	case !seenType:
		p.problem(line, "type", "is required")
	case !isString || !knownEventType(t):
		p.problem(line, "type", "must be one of "+join(EventTypes))
	default:
		ne.Type = t
	}
	p.checkEvent(event, ne.Type, line)
	if len(txn) > 0 && string(txn) != "null" {
		if len(txn) != 38 || txn[0] != '"' || txn[37] != '"' {
			p.problem(line, "txn", "must be a UUID string")
		} else if _, err := uuid.ParseBytes(txn[1:37]); err != nil {
			p.problem(line, "txn", "must be a UUID string")
		} else {
			ne.Txn = string(txn[1:37])
		}
	} else {
		ne.Txn = uuid.NewString()
	}
	if len(id) > 0 && string(id) != "null" {
		ne.ID = p.uuidField(line, "id", id)
	}
	if len(toe) > 0 && string(toe) != "null" {
		f, err := strconv.ParseFloat(string(toe), 64)
		if err != nil || f < 0 || f > maxToe || toe[0] == '"' {
			p.problem(line, "toe", "must be a number of seconds since 1970")
		}
		ne.Toe = int64(math.Floor(f))
	}
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

// uuidField parses a UUID string member, recording a problem when it is not one.
func (p *intakeParser) uuidField(line int, field string, val []byte) uuid.UUID {
	if len(val) == 38 && val[0] == '"' && val[37] == '"' {
		if u, err := uuid.ParseBytes(val[1:37]); err == nil && u != (uuid.UUID{}) {
			return u
		}
	}
	p.problem(line, field, "must be a UUID string")
	return uuid.UUID{}
}

// checkEvent validates the event object (valid JSON) of an event of type typ.
func (p *intakeParser) checkEvent(event []byte, typ string, line int) {
	if len(event) == 0 {
		p.problem(line, "event", "is required")
		return
	}
	var fields [len(requiredEventFields)]bool
	var attributes []byte
	ok := members(event, func(key, val []byte) {
		for i, name := range requiredEventFields {
			if string(key) == name {
				if len(val) <= 2 || val[0] != '"' {
					p.problem(line, "event."+name, "must be a non-empty string")
				}
				fields[i] = true
				return
			}
		}
		if string(key) == "attributes" {
			attributes = val
		}
	})
	if !ok {
		p.problem(line, "event", "must be a JSON object")
		return
	}
	for i, seen := range fields {
		if !seen {
			p.problem(line, "event."+requiredEventFields[i], "is required")
		}
	}
	if typ == "entityUpdated" {
		switch {
		case attributes == nil:
			p.problem(line, "event.attributes", "is required for entityUpdated")
		case !stringArray(attributes):
			p.problem(line, "event.attributes", "must be a list of attribute paths (strings)")
		}
	}
}

// The scanners below work on JSON that json.Valid accepted, so they only
// find boundaries and never check syntax.

// members calls fn for each member of the JSON object data, in order,
// with its unescaped key and its raw value. It reports false when data is
// not an object.
func members(data []byte, fn func(key, val []byte)) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] == '"' {
		end := stringEnd(data, i)
		key := data[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			_ = json.Unmarshal(data[i:end], &k)
			key = []byte(k)
		}
		i = skipSpace(data, end) + 1 // past ':'
		i = skipSpace(data, i)
		vend := valueEnd(data, i)
		fn(key, data[i:vend])
		i = skipSpace(data, vend)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string that starts at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// jsonString returns the string a raw JSON value holds, and whether it is one.
func jsonString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(val, '\\') < 0 {
		return string(val[1 : len(val)-1]), true
	}
	var s string
	err := json.Unmarshal(val, &s)
	return s, err == nil
}

// stringArray reports whether a raw JSON value is an array of strings.
func stringArray(val []byte) bool {
	if len(val) == 0 || val[0] != '[' {
		return false
	}
	i := skipSpace(val, 1)
	for i < len(val) && val[i] != ']' {
		if val[i] != '"' {
			return false
		}
		i = skipSpace(val, stringEnd(val, i))
		if i < len(val) && val[i] == ',' {
			i = skipSpace(val, i+1)
		}
	}
	return true
}

// refusal returns the problem of a parse that found bad lines, nil when
// every line was good.
func (p *intakeParser) refusal() error {
	if len(p.bad) > 0 {
		e := errInvalidParams(p.bad)
		if p.badCount > len(p.bad) {
			e.Details = "the request has " + strconv.Itoa(p.badCount) + " invalid parameters; the first " + strconv.Itoa(len(p.bad)) + " are listed"
		}
		return e
	}
	if len(p.large) > 0 {
		e := problem(http.StatusRequestEntityTooLarge, "event-too-large",
			"an event object is at most "+strconv.Itoa(p.maxEvent)+" bytes (compacted); the request has "+strconv.Itoa(p.largeCount)+" larger")
		e.Params = p.large
		return e
	}
	return nil
}
