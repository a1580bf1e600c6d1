package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// TestReplayReadsCompressedFiles: a gzip or zstd file is read
// decompressed, told by its first bytes whatever its name; a plain file
// as it is.
func TestReplayReadsCompressedFiles(t *testing.T) {
	plain := []byte(`{"jti":"a","toe":1,"events":{"entityCreated":{}}}` + "\n\n" + `{"jti":"b","toe":2,"events":{"entityDeleted":{}}}` + "\n")
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"plain.ndjson": plain, "file.ndjson.gz": gz.Bytes(), "file.ndjson.zst": zs.Bytes(), "misnamed.ndjson": zs.Bytes()} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if _, err := withExportFile(path, func(r io.Reader) (int64, error) {
			got, err = io.ReadAll(r)
			return 0, err
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("%s: got %q, want %q", name, got, plain)
		}
		n, err := withExportFile(path, countLines)
		if err != nil || n != 2 {
			t.Errorf("%s: got %d lines, %v; want 2", name, n, err)
		}
	}
}

func TestClaimsProblem(t *testing.T) {
	for line, ok := range map[string]bool{
		`{"iss":"i","iat":1,"jti":"j","aud":["a"],"toe":1,"events":{"entityCreated":{}}}`: true,
		`{"type":"entityCreated","event":{}}`:                                             false,
		`{"jti":"j","toe":1,"events":{}}`:                                                 false,
		`{"jti":"j","toe":1,"events":{"entityCreated":{},"entityDeleted":{}}}`:            false,
		`{"jti":1,"toe":1,"events":{"entityCreated":{}}}`:                                 false,
		`{"jti":"j","events":{"entityCreated":{}}}`:                                       false,
	} {
		if got := claimsProblem([]byte(line)); (got == "") != ok {
			t.Errorf("%s: got problem %q, want one: %v", line, got, !ok)
		}
	}
}
