package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// fileTarget matches a file a shell line writes: tee FILE, curl -o FILE,
// > FILE and >> FILE.
var fileTarget = regexp.MustCompile(`(?:\btee\s+(?:-a\s+)?|\s-o\s+|>>?\s*)("[^"]*"|[^\s|;&]+)`)

// TestReadmeWalkThroughWritesToTempDir: the README's walk-through, whose
// commands are run from the checkout, writes its files to a temporary
// directory (WORK=$(mktemp -d)), not into the checkout.
func TestReadmeWalkThroughWritesToTempDir(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "\n## Walk-through\n")
	if start < 0 {
		t.Fatal("README has no Walk-through section")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var shell []string
	for _, block := range strings.Split(section, "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, line := range strings.Split(block, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				shell = append(shell, line)
			}
		}
	}
	if !strings.Contains(strings.Join(shell, "\n"), "WORK=$(mktemp -d)") {
		t.Errorf("got a walk-through without WORK=$(mktemp -d), want its files in a temporary directory")
	}
	written := 0
	for _, line := range shell {
		for _, m := range fileTarget.FindAllStringSubmatch(line, -1) {
			target := strings.Trim(m[1], `"`)
			if target == "/dev/null" {
				continue
			}
			written++
			if !strings.HasPrefix(target, "$WORK/") {
				t.Errorf("walk-through line %q writes %s, want a file under $WORK", line, m[1])
			}
		}
	}
	if written == 0 {
		t.Error("found no file the walk-through writes; the test no longer reads it")
	}
}
