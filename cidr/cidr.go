// Package cidr parses the address ranges of the configuration and the API:
// a CIDR or a single address, IPv4-mapped IPv6 unmapped, zones refused.
package cidr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse parses a CIDR ("192.0.2.0/24") or a single address (a /32 or
// /128) and returns it masked ("192.0.2.7/24" is 192.0.2.0/24).
func Parse(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), bitsUnmapped(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func bitsUnmapped(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}
