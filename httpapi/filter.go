package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/sync/singleflight"
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

// Filter limits: what a filter may cost to compile and to apply is bounded
// by them, whatever a customer stores.
const (
	// MaxFilterSize bounds a filter's JSON, in bytes (compacted or not).
	MaxFilterSize = 16 << 10
	// MaxFilterDepth bounds the nesting of a filter's JSON objects and
	// arrays; the filter itself is level 1.
	MaxFilterDepth = 32
	// MaxFilterSchemas bounds the subschemas a filter holds with every
	// $ref followed (a chain of definitions that each refer twice to the
	// next would otherwise cost 2^n at every event).
	MaxFilterSchemas = 1000
	// MaxFilterRegexpSize bounds the compiled size (instructions) of a
	// filter's patterns together, with every $ref followed: what matching
	// one string against them all may cost.
	MaxFilterRegexpSize = 10000
)

// errExternalRef is the loader's answer to any reference outside the filter.
var errExternalRef = errors.New("filters may only refer to their own parts")

// refuseLoader is the compiler's URL loader: it loads nothing, so that a
// $ref that does not resolve inside the filter itself fails to compile,
// whatever base URI ($id) it was resolved against.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) { return nil, errExternalRef }

// compileFilter checks that raw is a JSON Schema draft-07 object within
// the filter limits that uses only draft-07 keywords at its top level and
// refers only to its own parts, and compiles it. The limits are checked
// before anything is decoded or compiled.
func compileFilter(raw json.RawMessage) (*jsonschema.Schema, error) {
	if len(raw) > MaxFilterSize {
		return nil, fmt.Errorf("must be at most %d bytes", MaxFilterSize)
	}
	if jsonDepth(raw) > MaxFilterDepth {
		return nil, fmt.Errorf("must nest at most %d levels deep", MaxFilterDepth)
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
	c.UseLoader(refuseLoader{})
	// A base URL (not a URN), so that relative references resolve to URLs
	// the loader is asked for and refuses; .invalid names nothing.
	const loc = "https://filter.hookd.invalid/filter.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, errors.New("is not a valid schema")
	}
	s, err := c.Compile(loc)
	if err != nil {
		var le *jsonschema.LoadURLError
		if errors.As(err, &le) {
			return nil, errors.New("must not refer outside itself: " + strconv.Quote(le.URL) + " is not part of the filter")
		}
		return nil, fmt.Errorf("is not a valid JSON Schema (draft-07): %s", firstLine(err.Error()))
	}
	if err := checkExpanded(s); err != nil {
		return nil, err
	}
	return s, nil
}

// jsonDepth returns the deepest nesting of objects and arrays in data, a
// JSON text, without decoding it.
func jsonDepth(data []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			i = stringEnd(data, i) - 1
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// checkExpanded walks a compiled filter with every $ref followed: it must
// hold at most MaxFilterSchemas subschemas, refer to no meta-schema (the
// compiler has those built in, without the loader) and never refer back to
// a schema it is part of (a cycle would make the cost of one event grow
// with the event's depth, exponentially when a schema refers to itself
// twice).
func checkExpanded(root *jsonschema.Schema) error {
	budget, reBudget := MaxFilterSchemas, MaxFilterRegexpSize
	spend := func(re jsonschema.Regexp) error {
		if re == nil {
			return nil
		}
		if reBudget -= regexpSize(re.String()); reBudget < 0 {
			return fmt.Errorf("its patterns must compile to at most %d instructions together", MaxFilterRegexpSize)
		}
		return nil
	}
	onPath := map[*jsonschema.Schema]bool{}
	var walk func(s *jsonschema.Schema) error
	walk = func(s *jsonschema.Schema) error {
		if s == nil {
			return nil
		}
		if onPath[s] {
			return errors.New("must not refer to itself ($ref cycle at " + strconv.Quote(s.Location) + ")")
		}
		if strings.HasPrefix(s.Location, "http://json-schema.org/") || strings.HasPrefix(s.Location, "https://json-schema.org/") {
			return errors.New("must not refer outside itself: " + strconv.Quote(s.Location) + " is not part of the filter")
		}
		if budget--; budget < 0 {
			return fmt.Errorf("must hold at most %d subschemas with every $ref followed", MaxFilterSchemas)
		}
		if err := spend(s.Pattern); err != nil {
			return err
		}
		for re := range s.PatternProperties {
			if err := spend(re); err != nil {
				return err
			}
		}
		onPath[s] = true
		defer delete(onPath, s)
		for _, c := range subschemas(s) {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// subschemas lists the schemas s applies to parts of an instance, its
// $ref's target included.
func subschemas(s *jsonschema.Schema) []*jsonschema.Schema {
	out := []*jsonschema.Schema{s.Ref, s.RecursiveRef, s.Not, s.If, s.Then, s.Else,
		s.PropertyNames, s.UnevaluatedProperties, s.Contains, s.Items2020, s.UnevaluatedItems, s.ContentSchema}
	if s.DynamicRef != nil {
		out = append(out, s.DynamicRef.Ref)
	}
	out = append(out, s.AllOf...)
	out = append(out, s.AnyOf...)
	out = append(out, s.OneOf...)
	out = append(out, s.PrefixItems...)
	for _, k := range sortedKeys(s.Properties) {
		out = append(out, s.Properties[k])
	}
	for _, c := range s.PatternProperties {
		out = append(out, c)
	}
	for _, c := range s.DependentSchemas {
		out = append(out, c)
	}
	for _, v := range s.Dependencies {
		out = append(out, asSchema(v))
	}
	for _, v := range []any{s.AdditionalProperties, s.AdditionalItems, s.Items} {
		if list, ok := v.([]*jsonschema.Schema); ok {
			out = append(out, list...)
		} else {
			out = append(out, asSchema(v))
		}
	}
	return out
}

// regexpSize returns the number of instructions of the compiled pattern
// src, as Go's regexp runs it.
func regexpSize(src string) int {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return 0 // the compiler accepted it, so this cannot happen
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

func asSchema(v any) *jsonschema.Schema {
	s, _ := v.(*jsonschema.Schema)
	return s
}

func sortedKeys(m map[string]*jsonschema.Schema) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// filterCache keeps the compiled filter of each subscription. Filters are
// compiled when they are stored and put here; a filter not here (after a
// restart) is compiled on first use outside the cache's lock, once however
// many requests need it at the same time, so that compiling one customer's
// filter never makes another customer's request wait.
type filterCache struct {
	compile func(json.RawMessage) (*jsonschema.Schema, error) // compileFilter; a test may wrap it
	group   singleflight.Group                                // x/sync: one compile per filter in flight

	mu sync.Mutex
	m  map[uuid.UUID]cachedFilter
}

type cachedFilter struct {
	raw    []byte // the filter as stored
	schema *jsonschema.Schema
	consts []constPath // requiredConsts of schema
	err    error       // the filter no longer compiles
}

func newFilterCache() *filterCache {
	return &filterCache{compile: compileFilter, m: map[uuid.UUID]cachedFilter{}}
}

// put records the compiled form of subscription id's filter raw.
func (c *filterCache) put(id uuid.UUID, raw []byte, schema *jsonschema.Schema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = cachedFilter{raw: raw, schema: schema, consts: requiredConsts(schema)}
}

// forget drops the filter of a subscription that has none any more.
func (c *filterCache) forget(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// get returns the compiled filter raw of subscription id with its
// requiredConsts; a filter that no longer compiles is an error (and
// matches nothing).
func (c *filterCache) get(id uuid.UUID, raw []byte) (*jsonschema.Schema, []constPath, error) {
	c.mu.Lock()
	f, ok := c.m[id]
	c.mu.Unlock()
	if ok && bytes.Equal(f.raw, raw) {
		return f.schema, f.consts, f.err
	}
	v, _, _ := c.group.Do(id.String()+"\x00"+string(raw), func() (any, error) {
		s, err := c.compile(raw)
		f := cachedFilter{raw: raw, schema: s, err: err}
		if err == nil {
			f.consts = requiredConsts(s)
		}
		c.mu.Lock()
		c.m[id] = f
		c.mu.Unlock()
		return f, nil
	})
	f = v.(cachedFilter)
	return f.schema, f.consts, f.err
}

// constPath is a condition that every instance a filter accepts meets:
// where the instance has a member at path (each step a member of an
// object), that member is the string want.
type constPath struct {
	path []string
	want string
}

// requiredConsts lists the string consts that s applies along chains of
// "properties" from its root: the usual filter, one that selects events
// by a member's value, in the form rejects can test without validating.
// Only keywords the compiled schema applies are followed (in draft-07 a
// schema with $ref has no other keyword), so every condition listed is
// necessary; the list need not be complete.
func requiredConsts(s *jsonschema.Schema) []constPath {
	var out []constPath
	var walk func(s *jsonschema.Schema, path []string)
	walk = func(s *jsonschema.Schema, path []string) {
		if s == nil || len(path) > MaxFilterDepth {
			return
		}
		if s.Const != nil && len(path) > 0 {
			if want, ok := (*s.Const).(string); ok {
				out = append(out, constPath{path: slices.Clone(path), want: want})
			}
		}
		for _, k := range sortedKeys(s.Properties) {
			walk(s.Properties[k], append(path, k))
		}
	}
	walk(s, nil)
	return out
}

// rejects reports whether instance fails one of conds, so that the filter
// they come from would refuse it: validating a refused instance builds
// its error, which costs far more than this test.
func rejects(conds []constPath, instance any) bool {
next:
	for _, c := range conds {
		v := instance
		for _, k := range c.path {
			obj, ok := v.(map[string]any)
			if !ok {
				continue next
			}
			if v, ok = obj[k]; !ok {
				continue next
			}
		}
		if s, ok := v.(string); !ok || s != c.want {
			return true
		}
	}
	return false
}
