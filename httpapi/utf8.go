package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Go's encoding/json replaces invalid UTF-8 in strings with U+FFFD instead
// of refusing it, and hookd keeps event objects as the bytes it received.
// So request bodies are checked with textValid first (cheap), and only a
// body that fails is scanned to name the member that holds the bad bytes.

// reasonUTF8 is the reason given for a member that is not valid UTF-8.
const reasonUTF8 = "must be valid UTF-8 (and escape no lone surrogate)"

// textValid reports whether data, JSON text, is valid UTF-8 and its
// strings escape no lone UTF-16 surrogate ("\ud800", which decoders
// either refuse or turn into U+FFFD).
func textValid(data []byte) bool {
	return utf8.Valid(data) && !loneSurrogate(data)
}

// loneSurrogate reports whether data holds a \u escape of a surrogate
// that is not half of a high-low pair.
func loneSurrogate(data []byte) bool {
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], []byte(`\u`))
		if j < 0 {
			return false
		}
		j += i
		// An escape only if an even number of backslashes precede it.
		n := 0
		for k := j - 1; k >= 0 && data[k] == '\\'; k-- {
			n++
		}
		i = j + 2
		if n%2 == 1 {
			continue
		}
		r, ok := hex4(data, j+2)
		switch {
		case !ok || r < 0xD800 || r > 0xDFFF:
			continue
		case r >= 0xDC00:
			return true // a low surrogate without a high one before it
		}
		if j+12 > len(data) || data[j+6] != '\\' || data[j+7] != 'u' {
			return true
		}
		if lo, ok := hex4(data, j+8); !ok || lo < 0xDC00 || lo > 0xDFFF {
			return true
		}
		i = j + 12
	}
	return false
}

// hex4 reads the four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
	return rune(v), err == nil
}

// invalidUTF8 finds the first string in data, a JSON text that
// json.Valid accepts, that is not valid UTF-8, and returns its path: the
// member names and "[index]" for array elements, from the outermost
// value in ("event", "sub"). A member name that is not valid UTF-8 ends
// the path, with its bad bytes replaced by U+FFFD. It reports false when
// every string is valid. It scans without recursion, so any nesting depth
// costs only memory for the path.
func invalidUTF8(data []byte) (path []string, found bool) {
	type frame struct {
		object bool
		key    []byte // the current member's raw name, when object
		index  int    // the current element, when an array
	}
	var stack []frame
	expectKey := false
	for i := 0; i < len(data); {
		switch data[i] {
		case '{':
			stack = append(stack, frame{object: true})
			expectKey = true
		case '[':
			stack = append(stack, frame{})
			expectKey = false
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if top := len(stack) - 1; top >= 0 {
				if stack[top].object {
					expectKey = true
				} else {
					stack[top].index++
				}
			}
		case ':':
			expectKey = false
		case '"':
			end := stringEnd(data, i)
			raw := data[i+1 : max(i+1, end-1)]
			if expectKey && len(stack) > 0 {
				stack[len(stack)-1].key = raw
			}
			if !textValid(raw) {
				for _, f := range stack {
					if f.object {
						path = append(path, strings.ToValidUTF8(unescapeKey(f.key), "\uFFFD"))
					} else {
						path = append(path, "["+strconv.Itoa(f.index)+"]")
					}
				}
				return path, true
			}
			i = end
			continue
		}
		i++
	}
	return nil, false
}

// joinPath writes a path as "event.sub" or "events[1]".
func joinPath(path []string) string {
	var b strings.Builder
	for _, seg := range path {
		if b.Len() > 0 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// unescapeKey returns a raw JSON member name as a string.
func unescapeKey(raw []byte) string {
	if strings.IndexByte(string(raw), '\\') < 0 {
		return string(raw)
	}
	var s string
	if json.Unmarshal([]byte(`"`+string(raw)+`"`), &s) != nil {
		return string(raw)
	}
	return s
}
