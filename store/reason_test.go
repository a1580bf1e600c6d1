package store

import "testing"

func TestReasonCodeNames(t *testing.T) {
	for _, c := range ReasonCodes() {
		got, ok := ParseReasonCode(c.String())
		if !ok || got != c || c.String() == "" {
			t.Errorf("code %d: name %q parses to %d, %v", c, c.String(), got, ok)
		}
	}
	if _, ok := ParseReasonCode("nope"); ok {
		t.Errorf("ParseReasonCode(nope): got ok, want not")
	}
	if len(ReasonCodes()) != 13 {
		t.Errorf("got %d codes, want 13", len(ReasonCodes()))
	}
}
