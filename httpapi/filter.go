package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// draft7Keywords are the keywords a draft-07 schema may use at its top level.
var draft7Keywords = map[string]bool{
	"$schema": true, "$id": true, "$ref": true, "$comment": true, "title": true,
	"description": true, "default": true, "readOnly": true, "writeOnly": true,
	"examples": true, "multipleOf": true, "maximum": true, "exclusiveMaximum": true,
	"minimum": true, "exclusiveMinimum": true, "maxLength": true, "minLength": true,
	"pattern": true, "additionalItems": true, "items": true, "maxItems": true,
	"minItems": true, "uniqueItems": true, "contains": true, "maxProperties": true,
	"minProperties": true, "required": true, "additionalProperties": true,
	"definitions": true, "properties": true, "patternProperties": true,
	"dependencies": true, "propertyNames": true, "const": true, "enum": true,
	"type": true, "format": true, "contentMediaType": true, "contentEncoding": true,
	"if": true, "then": true, "else": true, "allOf": true, "anyOf": true,
	"oneOf": true, "not": true,
}

const draft7URI = "http://json-schema.org/draft-07/schema"

// maxFilterSize bounds a filter's JSON.
const maxFilterSize = 64 << 10

// compileFilter checks that raw is a JSON Schema draft-07 object that uses
// only draft-07 keywords at its top level and compiles it. Remote
// references are refused.
func compileFilter(raw json.RawMessage) (*jsonschema.Schema, error) {
	if len(raw) > maxFilterSize {
		return nil, fmt.Errorf("must be at most %d bytes", maxFilterSize)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, errors.New("must be a JSON Schema (draft-07) object")
	}
	var unknown []string
	for k := range top {
		if !draft7Keywords[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown keywords: %s", join(unknown))
	}
	if v, ok := top["$schema"]; ok {
		var uri string
		if json.Unmarshal(v, &uri) != nil || (uri != draft7URI && uri != draft7URI+"#") {
			return nil, errors.New("$schema must be " + draft7URI + "# when given")
		}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, errors.New("must be valid JSON")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file or network references
	const loc = "urn:hookd:filter"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, errors.New("is not a valid schema")
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema (draft-07): %s", firstLine(err.Error()))
	}
	return s, nil
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// filterCache keeps compiled filters per subscription version.
type filterCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]cachedFilter
}

type cachedFilter struct {
	updatedAt time.Time
	schema    *jsonschema.Schema
}

func newFilterCache() *filterCache { return &filterCache{m: map[uuid.UUID]cachedFilter{}} }

// get returns the compiled filter of a subscription as of updatedAt; a
// filter that no longer compiles matches nothing.
func (c *filterCache) get(id uuid.UUID, updatedAt time.Time, raw json.RawMessage) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.m[id]; ok && f.updatedAt.Equal(updatedAt) {
		return f.schema, nil
	}
	s, err := compileFilter(raw)
	if err != nil {
		return nil, err
	}
	c.m[id] = cachedFilter{updatedAt: updatedAt, schema: s}
	return s, nil
}
