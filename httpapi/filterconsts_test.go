package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestRejectsOnlyWhatTheFilterRefuses holds rejects to the filter it comes
// from: whatever it rejects the filter refuses, and for the usual filter
// (a member's value) it rejects every event of another value, so that
// those are never validated.
func TestRejectsOnlyWhatTheFilterRefuses(t *testing.T) {
	filters := []struct {
		name   string
		filter string
		consts int // how many conditions requiredConsts finds
	}{
		{"a member's value", `{"properties":{"entityUpdated":{"required":["entityType"],"properties":{"entityType":{"const":"user"}}}}}`, 1},
		{"two levels and two members", `{"properties":{"entityCreated":{"properties":{"entityType":{"const":"user"},"attrs":{"properties":{"realm":{"const":"eu"}}}}}}}`, 2},
		{"a const that is not a string", `{"properties":{"entityCreated":{"properties":{"n":{"const":3}}}}}`, 0},
		{"$ref beside properties (draft-07 ignores the rest)", `{"definitions":{"any":{}},"properties":{"entityCreated":{"$ref":"#/definitions/any","properties":{"entityType":{"const":"user"}}}}}`, 0},
		{"inside anyOf (not necessary)", `{"anyOf":[{"properties":{"entityCreated":{"properties":{"entityType":{"const":"user"}}}}},true]}`, 0},
		{"a const at the root", `{"const":"x"}`, 0},
	}
	instances := []string{
		`{"entityUpdated":{"entityType":"user"}}`,
		`{"entityUpdated":{"entityType":"group"}}`,
		`{"entityUpdated":{"entityType":7}}`,
		`{"entityUpdated":{}}`,
		`{"entityUpdated":"user"}`,
		`{"entityCreated":{"entityType":"user"}}`,
		`{"entityCreated":{"entityType":"group"}}`,
		`{"entityCreated":{"entityType":"user","attrs":{"realm":"eu"}}}`,
		`{"entityCreated":{"entityType":"user","attrs":{"realm":"us"}}}`,
		`{"entityCreated":{"entityType":"user","attrs":[1]}}`,
		`{"entityCreated":{"n":3}}`,
		`{"entityCreated":{"n":4}}`,
		`{"entityCreated":null}`,
	}
	for _, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			schema, err := compileFilter(json.RawMessage(f.filter))
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			consts := requiredConsts(schema)
			if len(consts) != f.consts {
				t.Errorf("got %d conditions %v, want %d", len(consts), consts, f.consts)
			}
			for _, in := range instances {
				v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(in)))
				if err != nil {
					t.Fatal(err)
				}
				if rejects(consts, v) && schema.Validate(v) == nil {
					t.Errorf("%s: rejected, but the filter accepts it", in)
				}
			}
		})
	}

	schema, err := compileFilter(json.RawMessage(filters[0].filter))
	if err != nil {
		t.Fatal(err)
	}
	consts := requiredConsts(schema)
	for in, want := range map[string]bool{
		`{"entityUpdated":{"entityType":"group"}}`: true,
		`{"entityUpdated":{"entityType":7}}`:       true,
		`{"entityUpdated":{"entityType":"user"}}`:  false,
		`{"entityUpdated":{}}`:                     false, // refused by "required", left to the validation
	} {
		v, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(in)))
		if got := rejects(consts, v); got != want {
			t.Errorf("%s: rejects %v, want %v", in, got, want)
		}
	}
}

// BenchmarkFilterRefusal compares refusing an event of another value by
// validation with refusing it by rejects.
func BenchmarkFilterRefusal(b *testing.B) {
	schema, err := compileFilter(json.RawMessage(`{"properties":{"entityUpdated":{"required":["entityType"],"properties":{"entityType":{"const":"bench-01"}}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"entityUpdated":{"entityType":"bench-02","captureApplicationId":"a","sub":"s"}}`)))
	consts := requiredConsts(schema)
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if schema.Validate(v) == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("rejects", func(b *testing.B) {
		for b.Loop() {
			if !rejects(consts, v) {
				b.Fatal("not rejected")
			}
		}
	})
}
