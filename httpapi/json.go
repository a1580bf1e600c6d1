package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"hookd/wire"
)

// writeJSON marshals v before writing any header, so that an encoding error
// still produces a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	data, err := marshalJSON(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
	return nil
}

func writeJSONStatus(w http.ResponseWriter, status int, contentType string, v any) {
	data, err := marshalJSON(v)
	if err != nil {
		data = []byte(`{"type":"/internal-error","status":500,"title":"Internal Server Error"}` + "\n")
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// marshalJSON encodes v as one line ending in a newline, without escaping
// <, > and & (titles, details and filters read as they were written).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// decodeObject reads a JSON object body into its members. Anything that is
// not a JSON object is /invalid-request-body.
func decodeObject(w http.ResponseWriter, r *http.Request, limit int64, mediaTypes ...string) (map[string]json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && len(mediaTypes) > 0 {
		mt, _, err := mime.ParseMediaType(ct)
		ok := false
		for _, m := range mediaTypes {
			ok = ok || (err == nil && mt == m)
		}
		if !ok {
			return nil, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Content-Type must be one of "+join(mediaTypes))
		}
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errBadRequest("invalid-request-body", "the request body must be a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errBadRequest("invalid-request-body", "the request body must hold exactly one JSON object")
	}
	if !textValid(body) {
		// Named by the top-level member that holds the bad bytes, in its
		// name or anywhere in its value.
		name := "body"
		if path, ok := invalidUTF8(body); ok && len(path) > 0 {
			name = path[0]
		}
		return nil, errInvalidParams([]ParamError{{Name: name, Reason: reasonUTF8}})
	}
	return m, nil
}

func join(items []string) string {
	var b bytes.Buffer
	for i, s := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// pathVar reads a route variable: the one place that knows the router.
func pathVar(r *http.Request, name string) string { return mux.Vars(r)[name] }

// pathUUID reads a route variable that must be a UUID; anything else names
// no resource and is 404.
func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(pathVar(r, name))
	if err != nil || len(pathVar(r, name)) != 36 {
		return uuid.UUID{}, errNotFound("no " + name + " " + strconv.Quote(pathVar(r, name)))
	}
	return id, nil
}

// link is a HAL link.
type link = wire.Link

// pageQuery reads the optional page parameter: 0 when absent.
func pageQuery(r *http.Request) (int, error) {
	v := r.URL.Query().Get("page")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errBadRequest("invalid-query", "page must be a positive integer")
	}
	return n, nil
}

// paginate applies SPEC's paging to total items of size per page: page 0
// means all; a page past the end is the last page. It returns the slice
// bounds and the page actually served.
func paginate(total, size, page int) (from, to, served, last int) {
	last = (total + size - 1) / size
	if last == 0 {
		last = 1
	}
	if page == 0 {
		return 0, total, 0, last
	}
	if page > last {
		page = last
	}
	from = (page - 1) * size
	to = min(from+size, total)
	return from, to, page, last
}

// pageLinks builds self, next and prev links for a paged list at base.
func pageLinks(base string, served, last int) map[string]link {
	links := map[string]link{"self": {Href: base}}
	if served == 0 {
		return links
	}
	links["self"] = link{Href: base + "?page=" + strconv.Itoa(served)}
	if served < last {
		links["next"] = link{Href: base + "?page=" + strconv.Itoa(served+1)}
	}
	if served > 1 {
		links["prev"] = link{Href: base + "?page=" + strconv.Itoa(served-1)}
	}
	return links
}
