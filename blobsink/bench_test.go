package blobsink_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"hookd/blobsink"
)

// BenchmarkWrite writes 100,000 lines (about 60 MB) per operation to a
// file:// bucket with each encoding, generating every line as the export
// does (the caller's share of the work is included).
func BenchmarkWrite(b *testing.B) {
	for _, enc := range encodings {
		b.Run(enc.String(), func(b *testing.B) { benchWrite(b, enc, 100_000) })
	}
}

// BenchmarkWriteMillion is the export's performance target: 1,000,000 lines
// (about 600 MB) in under 10 s with a peak RSS under 150 MB. Run one
// encoding at a time for a meaningful peak-RSS figure, e.g.
//
//	go test ./blobsink -run '^$' -bench 'WriteMillion/zstd' -benchtime 1x
func BenchmarkWriteMillion(b *testing.B) {
	for _, enc := range encodings {
		b.Run(enc.String(), func(b *testing.B) { benchWrite(b, enc, 1_000_000) })
	}
}

// BenchmarkSink writes 100,000 prepared lines per operation: the sink's own
// cost (copying, compression, SHA-256, fileblob's MD5, the file and its
// fsync), without the caller's.
func BenchmarkSink(b *testing.B) {
	ls := lines(9, 100_000)
	var raw int64
	for _, l := range ls {
		raw += int64(len(l))
	}
	for _, enc := range encodings {
		b.Run(enc.String(), func(b *testing.B) {
			bucket, err := blobsink.Open(b.Context(), "file://"+filepath.Join(b.TempDir(), "exports"))
			if err != nil {
				b.Fatal(err)
			}
			defer bucket.Close()
			b.SetBytes(raw)
			for i := 0; b.Loop(); i++ {
				key := blobsink.Key("cust", "sub", "job-"+strconv.Itoa(i), enc)
				w, err := blobsink.NewWriter(b.Context(), bucket, key, enc)
				if err != nil {
					b.Fatal(err)
				}
				for _, l := range ls {
					if _, err := w.Write(l); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := blobsink.Delete(b.Context(), bucket, key); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

func benchWrite(b *testing.B, enc blobsink.Encoding, n int) {
	dir := filepath.Join(b.TempDir(), "exports")
	bucket, err := blobsink.Open(b.Context(), "file://"+dir)
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	r := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 0, 1024)
	var raw, stored int64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := blobsink.Key("cust", "sub", "job-"+strconv.Itoa(i), enc)
		w, err := blobsink.NewWriter(b.Context(), bucket, key, enc)
		if err != nil {
			b.Fatal(err)
		}
		raw = 0
		for j := range n {
			buf = appendLine(buf[:0], r, j)
			raw += int64(len(buf))
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		info, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		stored = info.Size
		b.StopTimer()
		if err := blobsink.Delete(b.Context(), bucket, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.SetBytes(raw)
	b.ReportMetric(float64(stored)/float64(raw), "ratio")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	}
}

// peakRSS returns the process's peak resident set size in bytes (Linux), or
// 0 when unknown.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
