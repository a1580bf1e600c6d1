package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// testDNS is a tiny DNS server on loopback UDP answering A and AAAA
// questions from a table, so tests resolve names without external DNS.
type testDNS struct {
	mu      sync.Mutex
	records map[string][]netip.Addr // lower-case name without trailing dot
}

// set replaces the addresses of name; no addresses make it NXDOMAIN.
func (d *testDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(addrs) == 0 {
		delete(d.records, name)
		return
	}
	list := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		list[i] = netip.MustParseAddr(a)
	}
	d.records[name] = list
}

// newTestResolver starts a testDNS seeded with records and returns it with
// a pure-Go resolver that sends every query to it. /etc/hosts is still
// read first, as by any resolver.
func newTestResolver(t *testing.T, records map[string][]string) (*testDNS, *net.Resolver) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen dns: %v", err)
	}
	d := &testDNS{records: map[string][]netip.Addr{}}
	for name, addrs := range records {
		d.set(name, addrs...)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	addr := conn.LocalAddr().String()
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", addr)
		},
	}
	return d, r
}

// answer builds the response to one query, or nil to drop it.
func (d *testDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// Question: labels, then type and class.
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	qend := i + 4
	name := strings.ToLower(strings.Join(labels, "."))

	d.mu.Lock()
	addrs, found := d.records[name]
	d.mu.Unlock()

	var answers [][]byte
	for _, a := range addrs {
		switch {
		case qtype == 1 && a.Is4():
			answers = append(answers, a.AsSlice())
		case qtype == 28 && a.Is6():
			answers = append(answers, a.AsSlice())
		}
	}
	resp := make([]byte, 0, 512)
	resp = append(resp, q[0], q[1]) // id
	flags := uint16(0x8180)         // response, recursion desired and available
	if !found {
		flags |= 3 // NXDOMAIN
	}
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = append(resp, 0, 0, 0, 0) // no authority, no additional
	resp = append(resp, q[12:qend]...)
	for _, rdata := range answers {
		resp = append(resp, 0xc0, 12) // pointer to the question name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // class IN
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

func TestCheckEndpoint(t *testing.T) {
	_, r := newTestResolver(t, map[string][]string{
		// Public addresses here are only resolved, never dialed.
		"public.hookd.test":    {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"public4.hookd.test":   {"93.184.215.14"},
		"mixed.hookd.test":     {"93.184.215.14", "10.0.0.1"},
		"private.hookd.test":   {"192.168.1.20"},
		"loop.hookd.test":      {"127.0.0.1", "::1"},
		"metadata.hookd.test":  {"169.254.169.254"},
		"cgnat.hookd.test":     {"100.64.1.1"},
		"ula.hookd.test":       {"fd00:ec2::254"},
		"linklocal.hookd.test": {"fe80::1"},
		"multicast.hookd.test": {"224.0.0.1"},
		"mapped.hookd.test":    {"::ffff:127.0.0.1"},
		"localhost":            {"127.0.0.1"},
	})
	long := "https://public.hookd.test/" + strings.Repeat("a", MaxEndpointLength)

	tests := []struct {
		name string
		raw  string
		dev  bool
		want string // "" means accepted
	}{
		{name: "https name", raw: "https://public.hookd.test/hooks?x=1"},
		{name: "https name with port", raw: "https://public4.hookd.test:8443/hooks"},
		{name: "public IPv4 literal", raw: "https://93.184.215.14/"},
		{name: "public IPv6 literal", raw: "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"},
		{name: "http refused", raw: "http://public.hookd.test/", want: "must use https"},
		{name: "http in dev", raw: "http://public.hookd.test/", dev: true},
		{name: "other scheme", raw: "ftp://public.hookd.test/", want: "must use https"},
		{name: "other scheme in dev", raw: "ftp://public.hookd.test/", dev: true, want: "must use http or https"},
		{name: "empty", raw: "", want: "must not be empty"},
		{name: "relative", raw: "/hooks", want: "must be an absolute URL"},
		{name: "opaque", raw: "https:public.hookd.test", want: "must be an absolute URL"},
		{name: "unparsable", raw: "https://public.hookd.test/%zz", want: "must be a valid URL"},
		{name: "user info", raw: "https://user:pw@public.hookd.test/", want: "must not contain user info"},
		{name: "bare user", raw: "https://user@public.hookd.test/", want: "must not contain user info"},
		{name: "fragment", raw: "https://public.hookd.test/#top", want: "must not contain a fragment"},
		{name: "empty fragment", raw: "https://public.hookd.test/#", want: "must not contain a fragment"},
		{name: "no host", raw: "https:///hooks", want: "must have a host"},
		{name: "port only", raw: "https://:443/hooks", want: "must have a host"},
		{name: "port zero", raw: "https://public.hookd.test:0/", want: "must have a valid port"},
		{name: "port too big", raw: "https://public.hookd.test:70000/", want: "must have a valid port"},
		{name: "too long", raw: long, want: "must be at most 2048 characters"},
		{name: "does not resolve", raw: "https://nx.hookd.test/", want: "host does not resolve"},
		{name: "does not resolve in dev", raw: "https://nx.hookd.test/", dev: true, want: "host does not resolve"},
		{name: "one private address", raw: "https://mixed.hookd.test/", want: "host resolves to a non-public address 10.0.0.1"},
		{name: "private", raw: "https://private.hookd.test/", want: "host resolves to a non-public address 192.168.1.20"},
		{name: "loopback name", raw: "https://loop.hookd.test/", want: "host resolves to a non-public address"},
		{name: "localhost", raw: "https://localhost/", want: "host resolves to a non-public address"},
		{name: "metadata", raw: "https://metadata.hookd.test/", want: "host resolves to a non-public address 169.254.169.254"},
		{name: "cgnat", raw: "https://cgnat.hookd.test/", want: "host resolves to a non-public address 100.64.1.1"},
		{name: "unique local", raw: "https://ula.hookd.test/", want: "host resolves to a non-public address fd00:ec2::254"},
		{name: "link-local v6", raw: "https://linklocal.hookd.test/", want: "host resolves to a non-public address fe80::1"},
		{name: "multicast", raw: "https://multicast.hookd.test/", want: "host resolves to a non-public address 224.0.0.1"},
		{name: "IPv4-mapped loopback", raw: "https://mapped.hookd.test/", want: "host resolves to a non-public address 127.0.0.1"},
		{name: "loopback literal", raw: "https://127.0.0.1:8443/", want: "host is a non-public address 127.0.0.1"},
		{name: "IPv6 loopback literal", raw: "https://[::1]/", want: "host is a non-public address ::1"},
		{name: "private literal", raw: "https://10.1.2.3/", want: "host is a non-public address 10.1.2.3"},
		{name: "metadata literal", raw: "http://169.254.169.254/latest", dev: false, want: "must use https"},
		{name: "metadata literal https", raw: "https://169.254.169.254/latest", want: "host is a non-public address 169.254.169.254"},
		{name: "unspecified literal", raw: "https://0.0.0.0/", want: "host is a non-public address 0.0.0.0"},
		{name: "mapped private literal", raw: "https://[::ffff:10.0.0.1]/", want: "host is a non-public address ::ffff:10.0.0.1"},
		{name: "mapped public literal", raw: "https://[::ffff:93.184.215.14]/"},
		{name: "zoned literal", raw: "https://[fe80::1%25eth0]/", want: "host is a non-public address"},
		{name: "loopback literal in dev", raw: "http://127.0.0.1:8080/", dev: true},
		{name: "private name in dev", raw: "https://private.hookd.test/", dev: true},
		{name: "localhost in dev", raw: "http://localhost:8080/hooks", dev: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := CheckEndpoint(ctx, tt.raw, tt.dev, r)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckEndpoint(%q): got %v, want nil", tt.raw, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckEndpoint(%q): got nil, want %q", tt.raw, tt.want)
			}
			var epErr *EndpointError
			if !errors.As(err, &epErr) {
				t.Errorf("CheckEndpoint(%q): got %T, want *EndpointError", tt.raw, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("CheckEndpoint(%q): got %q, want %q", tt.raw, err, tt.want)
			}
		})
	}
}

func TestCheckEndpointCanceled(t *testing.T) {
	_, r := newTestResolver(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := CheckEndpoint(ctx, "https://public.hookd.test/", false, r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestIsPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14":          true,
		"2606:4700::1111":        true,
		"::ffff:93.184.215.14":   true,
		"127.0.0.1":              false,
		"::1":                    false,
		"10.0.0.1":               false,
		"172.16.0.1":             false,
		"192.168.0.1":            false,
		"169.254.169.254":        false,
		"100.64.0.1":             false,
		"224.0.0.1":              false,
		"255.255.255.255":        false,
		"fc00::1":                false,
		"fe80::1":                false,
		"ff02::1":                false,
		"::ffff:127.0.0.1":       false,
		"::ffff:169.254.169.254": false,
		"64:ff9b::7f00:1":        false,
		"2001:db8::1":            false,
		"::":                     false,
	} {
		if got := IsPublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublicAddr(%s): got %v, want %v", addr, got, want)
		}
	}
	if IsPublicAddr(netip.Addr{}) {
		t.Errorf("IsPublicAddr(zero): got true, want false")
	}
}
