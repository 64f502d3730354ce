package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/keyfile"
	"github.com/sipwarden/sipwarden/token"
)

// newTokens builds the JWT issuer and verifier: Ed25519 with a key kept in
// the data dir (created on first start), or HS256 with the configured
// secret; plus the external issuers' keys. In a cluster, shared (when not
// nil) turns this node's Ed25519 seed into the cluster's.
func newTokens(cfg config.Config, logger *slog.Logger, shared func(seed []byte) ([]byte, error)) (*token.Issuer, *token.Verifier, error) {
	j := cfg.JWT
	var key token.Key
	switch j.Algorithm {
	case "hs256":
		k, err := token.HMACKey([]byte(j.Secret))
		if err != nil {
			return nil, nil, fmt.Errorf("config: jwt.secret: %w", err)
		}
		key = k
	default:
		path := filepath.Join(cfg.DataDir, "jwt-ed25519.key")
		seed, created, err := keyfile.LoadOrCreateHex(path, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("jwt key: %w", err)
		}
		local := seed
		if shared != nil {
			if seed, err = shared(seed); err != nil {
				return nil, nil, fmt.Errorf("jwt key: %w", err)
			}
		}
		switch {
		case shared != nil && !bytes.Equal(seed, local):
			// A cluster's: the one the first node stored (the file
			// here, generated or not, is unused).
			logger.Info("JWT signing key: the cluster's")
		case created:
			logger.Info("JWT signing key generated", "path", path)
		}
		if key, err = token.Ed25519Key(seed); err != nil {
			return nil, nil, fmt.Errorf("jwt key %s: %w", path, err)
		}
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Issuer: j.Issuer, Audience: j.Audience, TTL: j.TTL.D(), Key: key})
	if err != nil {
		return nil, nil, err
	}
	var ext []token.External
	for i, e := range j.ExternalIssuers {
		var (
			keys []token.Key
			err  error
		)
		file := e.JWKSFile
		if file == "" {
			file = e.PEMFile
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("config: jwt.external_issuers[%d]: %w", i, err)
		}
		if e.JWKSFile != "" {
			keys, err = token.ParseJWKS(data)
		} else {
			keys, err = token.ParsePEMPublicKeys(data)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("config: jwt.external_issuers[%d] %s: %w", i, file, err)
		}
		ext = append(ext, token.External{Issuer: e.Issuer, Audience: e.Audience, Keys: keys,
			UserClaim: e.UserClaim, RequireCredential: e.RequireCredential})
	}
	ver, err := token.NewVerifier(token.VerifierConfig{Issuer: j.Issuer, Audience: j.Audience, Key: key,
		External: ext, Leeway: j.Leeway.D()})
	if err != nil {
		return nil, nil, err
	}
	return iss, ver, nil
}
