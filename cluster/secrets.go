package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Names of the shared secrets.
const (
	SecretNonceKey   = "nonce_key"   // digest nonces' HMAC key, 32 bytes
	SecretNonceEpoch = "nonce_epoch" // digest nonces' epoch, 4 bytes
	SecretJWTKey     = "jwt_ed25519" // the JWT signing key's seed, 32 bytes
)

// Secret returns the cluster's secret called name: the one in Redis, or,
// when there is none yet, offer, stored with SET NX so that nodes starting
// at once agree on the first one written. When strict (offer comes from
// this node's configuration) and Redis holds another value, it fails: the
// nodes' configurations disagree. The secret has len(offer) bytes.
func (c *Cluster) Secret(ctx context.Context, name string, offer []byte, strict bool) ([]byte, error) {
	s, err := c.first(ctx, keySecret+name, name, hex.EncodeToString(offer))
	if err != nil {
		return nil, err
	}
	got, err := hex.DecodeString(s)
	if err != nil || len(got) != len(offer) {
		return nil, fmt.Errorf("cluster: %s in redis is not %d hex bytes", name, len(offer))
	}
	if strict && !bytes.Equal(got, offer) {
		return nil, fmt.Errorf("cluster: %s in redis differs from this node's configuration", name)
	}
	return got, nil
}

// RandomSecret is Secret offering size random bytes.
func (c *Cluster) RandomSecret(ctx context.Context, name string, size int) ([]byte, error) {
	offer := make([]byte, size)
	rand.Read(offer) // never fails (crypto/rand, Go 1.24)
	return c.Secret(ctx, name, offer, false)
}

// SettingRealm names the digest realm every node must share.
const SettingRealm = "realm"

// SameSetting stores value as the cluster's setting called name when it
// has none yet (SET NX: the first node to start sets it), and fails when
// it holds another: a setting every node must share, such as the digest
// realm (HA1s are computed for one realm; a node with another refused
// every password, counted it as a failure, and stored credentials the
// other nodes refused).
func (c *Cluster) SameSetting(ctx context.Context, name, value string) error {
	got, err := c.first(ctx, keySetting+name, name, value)
	if err != nil {
		return err
	}
	if got != value {
		return fmt.Errorf("cluster: %s %q differs from the cluster's %q: every node needs the same", name, value, got)
	}
	return nil
}

// first stores value at key when the key has none (SET NX: the first node
// to start wins) and returns what the key holds, value or an earlier one.
func (c *Cluster) first(ctx context.Context, key, name, value string) (string, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.SetNX(ctx, key, value, 0).Err(); err != nil {
		return "", c.unavailable("store "+name, err)
	}
	got, err := c.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("cluster: %s vanished from redis", name)
	}
	if err != nil {
		return "", c.unavailable("load "+name, err)
	}
	return got, nil
}
