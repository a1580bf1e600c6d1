package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"hookd/wire"
)

const goodEvent = `{"type":"entityUpdated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s","attributes":["email"]},"txn":"0b6e1f3c-4d2a-4f5e-8a9b-1c2d3e4f5a6b","toe":1700000000.75}`

func TestIntakeParserAcceptsAndKeeps(t *testing.T) {
	var p intakeParser
	body := goodEvent + "\n\n" + `{ "event" : { "sub":"s2", "captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g", "x": {"y": [1, "}"]} }, "type":"entityCreated" }` + "\n"
	if err := p.parseLines([]byte(body), 42); err != nil || len(p.bad) > 0 {
		t.Fatalf("got %v %v, want no problem", err, p.bad)
	}
	evs := p.events()
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	if e := evs[0]; e.Type != "entityUpdated" || e.Txn != "0b6e1f3c-4d2a-4f5e-8a9b-1c2d3e4f5a6b" || e.Toe != 1700000000 || !strings.Contains(string(e.Payload), `"attributes":["email"]`) {
		t.Errorf("got %+v, want the first event as sent", e)
	}
	e := evs[1]
	if e.Type != "entityCreated" || e.Toe != 42 || len(e.Txn) != 36 {
		t.Errorf("got type %q toe %d txn %q, want entityCreated, now and a generated txn", e.Type, e.Toe, e.Txn)
	}
	if want := `{"sub":"s2","captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","x":{"y":[1,"}"]}}`; string(e.Payload) != want {
		t.Errorf("got payload %s, want it compacted and complete: %s", e.Payload, want)
	}
}

func TestIntakeParserProblems(t *testing.T) {
	cases := []struct {
		name string
		line string
		want []string
	}{
		{"not an object", `[1,2]`, []string{"line 1"}},
		{"escaped keys are keys", strings.Replace(goodEvent, `"type"`, `"\u0074ype"`, 1), nil},
		{"key case matters", strings.Replace(goodEvent, `"type"`, `"Type"`, 1), []string{"line 1: Type", "line 1: type"}},
		{"duplicate member", strings.Replace(goodEvent, `{"type":"entityUpdated",`, `{"type":"entityUpdated","type":"entityCreated",`, 1), []string{"line 1: type"}},
		{"type not a string", strings.Replace(goodEvent, `"entityUpdated"`, `1`, 1), []string{"line 1: type"}},
		{"missing event", `{"type":"entityCreated"}`, []string{"line 1: event"}},
		{"event not an object", `{"type":"entityCreated","event":"x"}`, []string{"line 1: event"}},
		{"empty and non-string fields", strings.NewReplacer(`"sub":"s"`, `"sub":""`, `"globalSub":"g"`, `"globalSub":7`).Replace(goodEvent), []string{"line 1: event.globalSub", "line 1: event.sub"}},
		{"attributes of numbers", strings.Replace(goodEvent, `["email"]`, `[1]`, 1), []string{"line 1: event.attributes"}},
		{"attributes null", strings.Replace(goodEvent, `["email"]`, `null`, 1), []string{"line 1: event.attributes"}},
		{"txn not a uuid", strings.Replace(goodEvent, `"0b6e1f3c-4d2a-4f5e-8a9b-1c2d3e4f5a6b"`, `"0b6e1f3c4d2a4f5e8a9b1c2d3e4f5a6b0000"`, 1), []string{"line 1: txn"}},
		{"toe a string", strings.Replace(goodEvent, `1700000000.75`, `"1700000000"`, 1), []string{"line 1: toe"}},
		{"toe negative", strings.Replace(goodEvent, `1700000000.75`, `-1`, 1), []string{"line 1: toe"}},
		{"nulls are absent", strings.NewReplacer(`"0b6e1f3c-4d2a-4f5e-8a9b-1c2d3e4f5a6b"`, `null`, `1700000000.75`, `null`).Replace(goodEvent), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p intakeParser
			if err := p.parseLines([]byte(c.line), 1); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range p.bad {
				got = append(got, b.Name)
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got problems %q, want %q (%v)", got, c.want, p.bad)
			}
			if len(c.want) > 0 && len(p.events()) != 0 {
				t.Errorf("got %d events from a bad line, want 0", len(p.events()))
			}
		})
	}
}

// TestIntakeProblemsCarryLineAndField: each problem of an NDJSON body
// names its line (counted with the blank ones) and field as data, so a
// client maps them to its own file without reading the texts.
func TestIntakeProblemsCarryLineAndField(t *testing.T) {
	var p intakeParser
	body := goodEvent + "\n\n" + `{"type":"entityBogus","event":{}}` + "\n" + "[1]\n"
	if err := p.parseLines([]byte(body), 1); err != nil {
		t.Fatal(err)
	}
	want := []ParamError{
		{Name: "line 3: type", Reason: "must be one of entityCreated, entityDeleted, entityUpdated", Line: 3, Field: "type"},
		{Name: "line 4", Reason: "must be a JSON event object", Line: 4},
	}
	for _, w := range want {
		found := false
		for _, g := range p.bad {
			found = found || g == w
		}
		if !found {
			t.Errorf("got problems %+v, want %+v among them", p.bad, w)
		}
	}
	var single intakeParser
	if err := single.parseOne([]byte(`{"type":"entityBogus","event":{}}`), 1); err != nil {
		t.Fatal(err)
	}
	if len(single.bad) == 0 || single.bad[0].Line != 0 || single.bad[0].Field != "type" {
		t.Errorf("got %+v, want the field and no line for an application/json body", single.bad)
	}
}

func TestIntakeParserLimits(t *testing.T) {
	var p intakeParser
	if err := p.parseLines([]byte(strings.Repeat(goodEvent+"\n", wire.MaxIntakeEvents+1)), 1); err == nil {
		t.Error("got no error for 10,001 events, want one")
	}
	p = intakeParser{}
	if err := p.parseLines([]byte(strings.Repeat("x\n", 150)), 1); err != nil {
		t.Fatal(err)
	}
	if len(p.bad) != maxIntakeProblems || p.badCount != 150 {
		t.Errorf("got %d listed of %d problems, want %d listed of 150", len(p.bad), p.badCount, maxIntakeProblems)
	}
}

// TestMembersMatchesEncodingJSON checks the in-place scanner against
// encoding/json on objects with nested, escaped and spaced values.
func TestMembersMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`,
		` { "a" : 1 , "b":[ 1, {"c":"]}"} ] ,"d":"x\"y\\","e":null,"f":true,"g":-1.5e3 } `,
		`{"k\n\u00e9":{"nested":{"deep":["}",{"]":"["}]}},"z":""}`,
		`{"a":"\\","b":"\\\""}`,
	}
	for _, in := range inputs {
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		if !members([]byte(in), func(k, v []byte) { got[string(k)] = string(v) }) {
			t.Fatalf("%s: members refused an object", in)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d members, want %d", in, len(got), len(want))
		}
		for k, w := range want {
			var a, b bytes.Buffer
			_ = json.Compact(&a, w)
			_ = json.Compact(&b, []byte(got[k]))
			if a.String() != b.String() {
				t.Errorf("%s: member %q: got %s, want %s", in, k, got[k], w)
			}
		}
	}
	if members([]byte(`[1]`), func(_, _ []byte) {}) {
		t.Error("members accepted an array")
	}
}

func BenchmarkIntakeParseLines(b *testing.B) {
	body := []byte(strings.Repeat(goodEvent+"\n", 1000))
	b.ReportAllocs()
	for b.Loop() {
		var p intakeParser
		if err := p.parseLines(body, 1); err != nil || len(p.bad) > 0 {
			b.Fatal(err, p.bad)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
