package api

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/sipwarden/sipwarden/cidr"
)

// maxAllowedCIDRs bounds a connection's allow-list.
const maxAllowedCIDRs = 100

// Narrowest prefixes an ip connection may trust: every address in its
// allowed_cidrs is never challenged and never banned, so a list holding
// 0.0.0.0/0 would make the whole Internet a trusted carrier (an open
// relay to the routes that name it). A private /8 is still accepted.
const (
	minIPConnectionBits4 = 8
	minIPConnectionBits6 = 32
)

// ipConnectionTooBroad returns the JSON pointer and a message naming the
// first canonical CIDR (as checkCIDRs returns them) too broad for an ip
// connection, or "" and "".
func ipConnectionTooBroad(cidrs []string) (pointer, msg string) {
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			continue
		}
		if min := minIPConnectionBits4; p.Addr().Is4() && p.Bits() < min {
			return "/allowed_cidrs/" + strconv.Itoa(i), fmt.Sprintf("allowed_cidrs[%d] %s is too broad for an ip connection, whose addresses are trusted without a password: /%d or narrower for IPv4", i, c, min)
		}
		if min := minIPConnectionBits6; !p.Addr().Is4() && p.Bits() < min {
			return "/allowed_cidrs/" + strconv.Itoa(i), fmt.Sprintf("allowed_cidrs[%d] %s is too broad for an ip connection, whose addresses are trusted without a password: /%d or narrower for IPv6", i, c, min)
		}
	}
	return "", ""
}

// checkCIDRs validates an allow-list of addresses and CIDRs and returns
// them canonical ("192.0.2.7" is 192.0.2.7/32, "10.1.2.3/8" is
// 10.0.0.0/8), without duplicates; an empty list is nil (any address).
func (v *validation) checkCIDRs(pointer string, l []string) []string {
	if len(l) > maxAllowedCIDRs {
		v.add(pointer, CodeTooLong, "allowed_cidrs holds more than %d entries", maxAllowedCIDRs)
		return nil
	}
	var out []string
	for i, s := range l {
		p, err := cidr.Parse(s)
		if err != nil {
			v.add(pointer+"/"+strconv.Itoa(i), CodeInvalidValue,
				"allowed_cidrs[%d] must be an address or a CIDR such as 192.0.2.0/24 or 2001:db8::/32, not %q", i, truncate(s, 64))
			continue
		}
		c := p.String()
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// maxPublicTargets bounds a connection's public targets.
const maxPublicTargets = 100

// checkPublicTargets validates the users and numbers anonymous callers
// may call (store.Connection.PublicTargets): each one a SIP username (a
// number is one too: "+15550100"), without duplicates; an empty list is
// nil (none).
func (v *validation) checkPublicTargets(pointer string, l []string) []string {
	if len(l) > maxPublicTargets {
		v.add(pointer, CodeTooLong, "public_targets holds more than %d entries", maxPublicTargets)
		return nil
	}
	var out []string
	for i, s := range l {
		var one validation
		one.checkUsername(pointer+"/"+strconv.Itoa(i), s)
		if len(one) > 0 {
			for _, e := range one {
				if len(*v) < maxValidationErrorObjs {
					*v = append(*v, e)
				}
			}
			continue
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
