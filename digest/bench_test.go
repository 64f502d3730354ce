package digest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

func BenchmarkParseCredentials(b *testing.B) {
	for _, bm := range []struct{ name, header string }{
		{"linphone", linphoneHeader}, {"sipp", sippHeader}, {"baresip", baresipHeader},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.header)))
			for b.Loop() {
				if _, err := digest.ParseCredentials(bm.header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchmarkVerify(b *testing.B, alg digest.Algorithm) {
	c := rfcCredentials(alg.String(), "")
	ha1 := digest.HA1(alg, rfcUser, rfcRealm, rfcPass)
	c.Response = digest.Response(c, alg, "REGISTER", ha1, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !digest.Verify(c, alg, "REGISTER", ha1, nil) {
			b.Fatal("Verify: got false, want true")
		}
	}
}

func BenchmarkVerifyMD5(b *testing.B)        { benchmarkVerify(b, digest.MD5) }
func BenchmarkVerifySHA256(b *testing.B)     { benchmarkVerify(b, digest.SHA256) }
func BenchmarkVerifySHA512_256(b *testing.B) { benchmarkVerify(b, digest.SHA512_256) }

func BenchmarkNonceNew(b *testing.B) {
	n, err := digest.NewNonces(testKey, time.Minute, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = n.New()
		}
	})
}

func BenchmarkNonceCheck(b *testing.B) {
	n, err := digest.NewNonces(testKey, time.Minute, nil)
	if err != nil {
		b.Fatal(err)
	}
	nonce := n.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s, _ := n.Check(nonce); s != digest.NonceValid {
				b.Fatalf("got %v, want valid", s)
			}
		}
	})
}

// BenchmarkCountsAccept: each goroutine registers with a nonce of its own
// and counts up, as phones do, then moves to a new nonce.
func BenchmarkCountsAccept(b *testing.B) {
	nonces := make([]string, 1<<16)
	for i := range nonces {
		nonces[i] = fmt.Sprintf("nonce-%048d", i)
	}
	benchmarkAccept(b, digest.NewCounts(1<<20, nil), nonces)
}

// BenchmarkCountsAcceptOwn is BenchmarkCountsAccept with nonces a Nonces
// issued, counted in the ring of NewCountsFor.
func BenchmarkCountsAcceptOwn(b *testing.B) {
	n, err := digest.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	nonces := make([]string, 1<<16)
	for i := range nonces {
		nonces[i] = n.New()
	}
	benchmarkAccept(b, digest.NewCountsFor(n, 1<<20, nil), nonces)
}

func benchmarkAccept(b *testing.B, c *digest.Counts, nonces []string) {
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i, nc := uint32(0), uint32(0)
		for pb.Next() {
			nc++
			if nc > 16 {
				nc, i = 1, i+1
			}
			c.Accept(nonces[int(i)%len(nonces)], nc, exp)
		}
	})
}

func BenchmarkChallengeAppendTo(b *testing.B) {
	c := digest.Challenge{Realm: "sipwarden.test", Nonce: "AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", Algorithm: digest.MD5, QOP: []string{"auth"}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.AppendTo(buf[:0])
	}
}
