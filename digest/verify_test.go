package digest_test

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/digest"
)

// The example of RFC 7616 section 3.9.1.
const (
	rfcUser    = "Mufasa"
	rfcPass    = "Circle of Life"
	rfcRealm   = "http-auth@example.org"
	rfcURI     = "/dir/index.html"
	rfcNonce   = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	rfcCNonce  = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	rfcOpaque  = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	rfcMD5     = "8ca523f5e9506fed4657c9700eebdbec"
	rfcSHA256  = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
	rfcHeader2 = "Digest username=\"Mufasa\",\r\n       realm=\"http-auth@example.org\",\r\n" +
		"       uri=\"/dir/index.html\",\r\n       algorithm=SHA-256,\r\n" +
		"       nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n       nc=00000001,\r\n" +
		"       cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n       qop=auth,\r\n" +
		"       response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\r\n" +
		"       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
)

// reference computes a response straight from the formulas of RFC 7616
// section 3.4 with the hash packages and fmt, sharing no code with the
// package under test.
func reference(newHash func() hash.Hash, user, realm, pass, method, uri, nonce, nc, cnonce, qop string, body []byte) string {
	h := func(s string) string {
		x := newHash()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha1 := h(user + ":" + realm + ":" + pass)
	a2 := method + ":" + uri
	if qop == "auth-int" {
		x := newHash()
		x.Write(body)
		a2 += ":" + hex.EncodeToString(x.Sum(nil))
	}
	if qop == "" {
		return h(fmt.Sprintf("%s:%s:%s", ha1, nonce, h(a2)))
	}
	return h(fmt.Sprintf("%s:%s:%s:%s:%s:%s", ha1, nonce, nc, cnonce, qop, h(a2)))
}

// truncated512 is SHA-512 cut to 256 bits: what SHA-512-256 must not be.
type truncated512 struct{ hash.Hash }

func (t truncated512) Sum(b []byte) []byte { return t.Hash.Sum(b)[:len(b)+32] }

func rfcCredentials(alg, response string) digest.Credentials {
	return digest.Credentials{
		Username: rfcUser, Realm: rfcRealm, Nonce: rfcNonce, URI: rfcURI, Response: response,
		Algorithm: alg, CNonce: rfcCNonce, Opaque: rfcOpaque, QOP: "auth", NC: "00000001", NonceCount: 1,
	}
}

func TestVerifyRFC7616Vectors(t *testing.T) {
	tests := []struct {
		name string
		alg  digest.Algorithm
		c    digest.Credentials
		want string
	}{
		{"MD5", digest.MD5, rfcCredentials("MD5", rfcMD5), rfcMD5},
		{"SHA-256", digest.SHA256, rfcCredentials("SHA-256", rfcSHA256), rfcSHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ha1 := digest.HA1(tt.alg, rfcUser, rfcRealm, rfcPass)
			if got := digest.Response(tt.c, tt.alg, "GET", ha1, nil); got != tt.want {
				t.Errorf("Response: got %s, want %s", got, tt.want)
			}
			if !digest.Verify(tt.c, tt.alg, "GET", ha1, nil) {
				t.Errorf("Verify: got false, want true")
			}
		})
	}
	// The same vector as a header, with the RFC's line folding.
	c, err := digest.ParseCredentials(rfcHeader2)
	if err != nil {
		t.Fatalf("parse the RFC header: %v", err)
	}
	if want := rfcCredentials("SHA-256", rfcSHA256); c != want {
		t.Fatalf("parse the RFC header: got %+v, want %+v", c, want)
	}
	if !digest.Verify(c, digest.SHA256, "GET", digest.HA1(digest.SHA256, rfcUser, rfcRealm, rfcPass), nil) {
		t.Errorf("Verify the RFC header: got false, want true")
	}
}

func TestVerify(t *testing.T) {
	body := []byte("v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\n")
	const (
		user, realm, pass = "alice", "sipwarden.test", "pw-0123456789"
		uri               = "sip:sipwarden.test;transport=udp"
		nonce             = "abc,def\"ghi" // a comma and a quote, as unescaped values
	)
	mk := func(alg, qop, nc, cnonce, resp string) digest.Credentials {
		c := digest.Credentials{Username: user, Realm: realm, Nonce: nonce, URI: uri, Response: resp,
			Algorithm: alg, QOP: qop, NC: nc, CNonce: cnonce}
		return c
	}
	ref := func(h func() hash.Hash, method, qop string, b []byte) string {
		return reference(h, user, realm, pass, method, uri, nonce, "0000000a", "c1", qop, b)
	}
	sha512_256 := ref(sha512.New512_256, "REGISTER", "auth", nil)
	if trunc := ref(func() hash.Hash { return truncated512{sha512.New()} }, "REGISTER", "auth", nil); trunc == sha512_256 {
		t.Fatalf("reference SHA-512/256 %s equals truncated SHA-512: the test is broken", trunc)
	}
	tests := []struct {
		name   string
		c      digest.Credentials
		alg    digest.Algorithm
		method string
		pass   string
		body   []byte
		want   bool
	}{
		{"md5 auth", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, true},
		{"md5 no algorithm parameter", mk("", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, true},
		{"sha-256 auth", mk("SHA-256", "auth", "0000000a", "c1", ref(sha256.New, "REGISTER", "auth", nil)), digest.SHA256, "REGISTER", pass, nil, true},
		{"sha-512-256 auth", mk("SHA-512-256", "auth", "0000000a", "c1", sha512_256), digest.SHA512_256, "REGISTER", pass, nil, true},
		{"sha-512-256 lowercase name", mk("sha-512-256", "auth", "0000000a", "c1", sha512_256), digest.SHA512_256, "REGISTER", pass, nil, true},
		{"md5 auth-int", mk("MD5", "auth-int", "0000000a", "c1", ref(md5.New, "INVITE", "auth-int", body)), digest.MD5, "INVITE", pass, body, true},
		{"sha-256 auth-int", mk("SHA-256", "auth-int", "0000000a", "c1", ref(sha256.New, "INVITE", "auth-int", body)), digest.SHA256, "INVITE", pass, body, true},
		{"auth-int empty body", mk("MD5", "auth-int", "0000000a", "c1", ref(md5.New, "REGISTER", "auth-int", nil)), digest.MD5, "REGISTER", pass, []byte{}, true},
		{"rfc 2069 no qop", mk("MD5", "", "", "", ref(md5.New, "REGISTER", "", nil)), digest.MD5, "REGISTER", pass, nil, true},
		{"uppercase response hex", mk("MD5", "auth", "0000000a", "c1", strings.ToUpper(ref(md5.New, "REGISTER", "auth", nil))), digest.MD5, "REGISTER", pass, nil, true},

		{"wrong password", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", "pw-wrong", nil, false},
		{"wrong method", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "INVITE", pass, nil, false},
		{"auth-int wrong body", mk("MD5", "auth-int", "0000000a", "c1", ref(md5.New, "INVITE", "auth-int", body)), digest.MD5, "INVITE", pass, []byte("v=1"), false},
		{"nc changed", mk("MD5", "auth", "0000000b", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, false},
		{"qop stripped", mk("MD5", "", "", "", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, false},
		{"qop without nc", mk("MD5", "auth", "", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, false},
		{"unknown qop", mk("MD5", "auth-conf", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.MD5, "REGISTER", pass, nil, false},
		{"algorithm mismatch", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), digest.SHA256, "REGISTER", pass, nil, false},
		{"algorithm mismatch default", mk("", "auth", "0000000a", "c1", ref(sha256.New, "REGISTER", "auth", nil)), digest.SHA256, "REGISTER", pass, nil, false},
		{"sha-512-256 computed as truncated sha-512", mk("SHA-512-256", "auth", "0000000a", "c1",
			ref(func() hash.Hash { return truncated512{sha512.New()} }, "REGISTER", "auth", nil)), digest.SHA512_256, "REGISTER", pass, nil, false},
		{"response too short", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)[:30]), digest.MD5, "REGISTER", pass, nil, false},
		{"response not hex", mk("MD5", "auth", "0000000a", "c1", "zz"+ref(md5.New, "REGISTER", "auth", nil)[2:]), digest.MD5, "REGISTER", pass, nil, false},
		{"invalid algorithm", mk("MD5", "auth", "0000000a", "c1", ref(md5.New, "REGISTER", "auth", nil)), 0, "REGISTER", pass, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alg := tt.alg
			if !strings.Contains(tt.name, "mismatch") && alg == 0 {
				alg = digest.MD5 // HA1 of a valid algorithm, checked with an invalid one
			}
			ha1 := digest.HA1(alg, user, realm, tt.pass)
			if got := digest.Verify(tt.c, tt.alg, tt.method, ha1, tt.body); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyHA1Length(t *testing.T) {
	c := rfcCredentials("MD5", rfcMD5)
	ha1 := digest.HA1(digest.MD5, rfcUser, rfcRealm, rfcPass)
	tests := []struct {
		name string
		ha1  string
		want bool
	}{
		{"right", ha1, true},
		{"empty (missing from the store)", "", false},
		{"sha-256 length", digest.HA1(digest.SHA256, rfcUser, rfcRealm, rfcPass), false},
		{"dummy", digest.DummyHA1(digest.MD5), false},
	}
	for _, tt := range tests {
		if got := digest.Verify(c, digest.MD5, "GET", tt.ha1, nil); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A wrong nc format is refused by the parser before Verify ever runs.
func TestVerifyWrongNCFormat(t *testing.T) {
	for _, nc := range []string{"1", "0000001", "000000001", "0000000g", "-0000001", `""`} {
		h := `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", nonce="` + rfcNonce +
			`", cnonce="` + rfcCNonce + `", qop=auth, response="` + rfcMD5 + `", nc=` + nc
		if _, err := digest.ParseCredentials(h); err == nil {
			t.Errorf("nc=%s: got no error, want ErrMalformed", nc)
		}
	}
}

func TestResponseInvalid(t *testing.T) {
	c := rfcCredentials("MD5", rfcMD5)
	if got := digest.Response(c, 0, "GET", "x", nil); got != "" {
		t.Errorf("invalid algorithm: got %q, want empty", got)
	}
	c.QOP = "auth-conf"
	if got := digest.Response(c, digest.MD5, "GET", "x", nil); got != "" {
		t.Errorf("unknown qop: got %q, want empty", got)
	}
}

// Every digit of the response counts: a change anywhere is refused.
func TestVerifyEveryDigitMatters(t *testing.T) {
	for _, tt := range []struct {
		alg  digest.Algorithm
		resp string
	}{{digest.MD5, rfcMD5}, {digest.SHA256, rfcSHA256}} {
		ha1 := digest.HA1(tt.alg, rfcUser, rfcRealm, rfcPass)
		for i := range len(tt.resp) {
			b := []byte(tt.resp)
			b[i] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[i])] // flip the lowest bit
			c := rfcCredentials(tt.alg.String(), string(b))
			if digest.Verify(c, tt.alg, "GET", ha1, nil) {
				t.Errorf("%v, digit %d changed: got true, want false", tt.alg, i)
			}
		}
	}
}
