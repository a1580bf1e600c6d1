package store

import "testing"

// TestRandomParts checks that every part of a group is its own: a group
// read at once must not hand out one part twice or leave parts empty.
func TestRandomParts(t *testing.T) {
	for _, n := range []int{0, 1, 1000} {
		parts, err := RandomParts(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != n {
			t.Fatalf("RandomParts(%d): got %d parts", n, len(parts))
		}
		seen := map[[10]byte]bool{}
		for i, p := range parts {
			if p == ([10]byte{}) {
				t.Fatalf("RandomParts(%d): part %d is all zero", n, i)
			}
			if seen[p] {
				t.Fatalf("RandomParts(%d): part %d repeats an earlier one", n, i)
			}
			seen[p] = true
		}
	}
	// Event ids built from one group differ in their random bits, not
	// only in their sequence numbers.
	parts, err := RandomParts(2)
	if err != nil {
		t.Fatal(err)
	}
	a, b := EventID(7, parts[0]), EventID(7, parts[1])
	if a == b {
		t.Fatalf("two ids of sequence 7 from one group are equal: %s", a)
	}
}
