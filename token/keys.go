package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// ParseJWKS reads the public keys of a JWK Set (RFC 7517): OKP Ed25519
// (EdDSA), RSA (RS256, or the key's alg) and EC P-256 (ES256). Private or
// symmetric keys are refused: an external issuer's HMAC secret has no
// place in a verifier's key file.
func ParseJWKS(data []byte) ([]Key, error) {
	var set struct {
		Keys []struct {
			Kty, Crv, Alg, Kid, Use string
			X, Y, N, E, D, K        string
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []Key
	for i, k := range set.Keys {
		if k.D != "" || k.K != "" || k.Kty == "oct" {
			return nil, fmt.Errorf("jwks: key %d: private or symmetric keys are not accepted", i)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key Key
		switch k.Kty {
		case "OKP":
			x, err := b64(k.X)
			if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("jwks: key %d: want an Ed25519 OKP key", i)
			}
			key = Key{Method: jwt.SigningMethodEdDSA, Verify: ed25519.PublicKey(x)}
		case "RSA":
			n, err1 := b64(k.N)
			e, err2 := b64(k.E)
			if err1 != nil || err2 != nil || len(n) < 256 {
				return nil, fmt.Errorf("jwks: key %d: want an RSA key of at least 2048 bits", i)
			}
			method := jwt.SigningMethod(jwt.SigningMethodRS256)
			if k.Alg != "" {
				if m := jwt.GetSigningMethod(k.Alg); m != nil {
					if _, ok := m.(*jwt.SigningMethodRSA); ok {
						method = m
					} else if _, ok := m.(*jwt.SigningMethodRSAPSS); ok {
						method = m
					} else {
						return nil, fmt.Errorf("jwks: key %d: alg %q is not an RSA algorithm", i, k.Alg)
					}
				}
			}
			key = Key{Method: method, Verify: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}}
		case "EC":
			x, err1 := b64(k.X)
			y, err2 := b64(k.Y)
			// RFC 7518 section 6.2.1.2: each coordinate is the full size
			// of one for the curve, 32 bytes for P-256.
			if err1 != nil || err2 != nil || k.Crv != "P-256" || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("jwks: key %d: want a P-256 EC key with 32-byte x and y", i)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("jwks: key %d: x and y are not a P-256 point: %w", i, err)
			}
			key = Key{Method: jwt.SigningMethodES256, Verify: pub}
		default:
			return nil, fmt.Errorf("jwks: key %d: key type %q not supported", i, k.Kty)
		}
		key.ID = k.Kid
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no signature key")
	}
	return out, nil
}

// ParsePEMPublicKeys reads PEM "PUBLIC KEY" blocks (PKIX): Ed25519, RSA
// (RS256) and P-256 (ES256).
func ParsePEMPublicKeys(data []byte) ([]Key, error) {
	var out []Key
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("pem: block %q: want PUBLIC KEY", b.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pem: %w", err)
		}
		switch p := pub.(type) {
		case ed25519.PublicKey:
			out = append(out, Key{ID: kidOf(p), Method: jwt.SigningMethodEdDSA, Verify: p})
		case *rsa.PublicKey:
			out = append(out, Key{Method: jwt.SigningMethodRS256, Verify: p})
		case *ecdsa.PublicKey:
			if p.Curve != elliptic.P256() {
				return nil, errors.New("pem: only P-256 EC keys")
			}
			out = append(out, Key{Method: jwt.SigningMethodES256, Verify: p})
		default:
			return nil, fmt.Errorf("pem: key type %T not supported", pub)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("pem: no public key")
	}
	return out, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
