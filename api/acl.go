package api

import (
	"strconv"

	"github.com/sipwarden/sipwarden/cidr"
)

// maxAllowedCIDRs bounds a connection's allow-list.
const maxAllowedCIDRs = 100

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
