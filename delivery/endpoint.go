package delivery

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"code.dny.dev/ssrf"
)

// MaxEndpointLength is the longest endpoint URL accepted.
const MaxEndpointLength = 2048

// EndpointError is a subscription endpoint refused by CheckEndpoint. Its
// text is a short reason fit for the client.
type EndpointError struct {
	// Reason says why, e.g. "must use https".
	Reason string
}

// Error returns the reason.
func (e *EndpointError) Error() string { return e.Reason }

func endpointErr(reason string) error { return &EndpointError{Reason: reason} }

// publicGuard judges addresses with the same lists as the dial-time check.
var publicGuard = ssrf.New(ssrf.WithAnyPort())

// IsPublicAddr reports whether a delivery may be dialed to ip outside dev
// mode. An IPv4-mapped IPv6 address is judged as its IPv4 address, as the
// dialer connects to it over IPv4.
func IsPublicAddr(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	return publicGuard.SafeAddr(ip.Unmap()) == nil
}

// CheckEndpoint validates a subscription endpoint: an absolute https URL
// (http too when dev) of at most MaxEndpointLength bytes, with a host, no
// user info and no fragment, whose host resolves through r (nil means
// net.DefaultResolver) to public addresses only; a literal IP host is
// judged directly. In dev mode any address is accepted, but the host must
// still resolve. A refused endpoint gives an *EndpointError; if ctx ends
// during resolution, ctx's error is returned.
func CheckEndpoint(ctx context.Context, raw string, dev bool, r *net.Resolver) error {
	if raw == "" {
		return endpointErr("must not be empty")
	}
	if len(raw) > MaxEndpointLength {
		return endpointErr("must be at most " + strconv.Itoa(MaxEndpointLength) + " characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpointErr("must be a valid URL")
	}
	if !u.IsAbs() || u.Opaque != "" {
		return endpointErr("must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !dev {
			return endpointErr("must use https")
		}
	default:
		if dev {
			return endpointErr("must use http or https")
		}
		return endpointErr("must use https")
	}
	if u.User != nil {
		return endpointErr("must not contain user info")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return endpointErr("must not contain a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return endpointErr("must have a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return endpointErr("must have a valid port")
		}
	}

	if ip, err := netip.ParseAddr(host); err == nil {
		if !dev && !IsPublicAddr(ip) {
			return endpointErr("host is a non-public address " + ip.String())
		}
		return nil
	}
	if strings.Contains(host, "%") {
		return endpointErr("must have a valid host")
	}

	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return endpointErr("host does not resolve")
	}
	if len(addrs) == 0 {
		return endpointErr("host does not resolve")
	}
	if dev {
		return nil
	}
	for _, ip := range addrs {
		if !IsPublicAddr(ip) {
			return endpointErr("host resolves to a non-public address " + ip.Unmap().String())
		}
	}
	return nil
}
