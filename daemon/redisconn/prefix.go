package redisconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Owning a key prefix. Every postald records its installation's id (from
// SQL, store.InstallationID) in the key "{prefix}:installation". Two
// installations on one prefix would read each other's stream entries,
// claim rows of those ids in their own databases and ack them, leases and
// counters included: mail waits for reconciliation, or worse. So the first
// installation to record its id owns the prefix, and another one is told so.
// A Redis that lost its keys is owned again by the first to record.

// PrefixTakenError says the prefix is owned by another installation.
type PrefixTakenError struct {
	// Prefix is the configured redis.key_prefix.
	Prefix string
	// Owner is the id recorded in Redis; Installation is this one's.
	Owner, Installation string
}

func (e *PrefixTakenError) Error() string {
	return fmt.Sprintf("redis key prefix %q belongs to another installation (id %s; this database's is %s): "+
		"two installations on one prefix take each other's work; give this one its own redis.key_prefix, "+
		"or run `postalctl queue reset` once the other installation is gone for good",
		e.Prefix, e.Owner, e.Installation)
}

// claimScript returns the owner recorded in KEYS[1], recording ARGV[1]
// first when there is none.
var claimScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]`)

// ownerKey is where the owning installation's id is kept.
func ownerKey(keys Keys) string { return keys.Key("installation") }

// ClaimPrefix records installation as the owner of keys' prefix unless an
// owner is recorded. It returns a *PrefixTakenError when another
// installation owns the prefix, and a wrapped error when Redis does not
// answer.
func ClaimPrefix(ctx context.Context, c redis.UniversalClient, keys Keys, installation string) error {
	owner, err := claimScript.Run(ctx, c, []string{ownerKey(keys)}, installation).Text()
	if err != nil {
		return fmt.Errorf("redis: claim key prefix %s: %w", keys.Prefix(), err)
	}
	if owner != installation {
		return &PrefixTakenError{Prefix: keys.Name(), Owner: owner, Installation: installation}
	}
	return nil
}

// CheckPrefix returns a *PrefixTakenError when another installation owns
// keys' prefix, and nil otherwise: when installation owns it, when nobody
// does yet, and when Redis does not answer (a command then changes SQL
// alone and reconciliation dispatches later). It records nothing: postald
// claims, postalctl and the console only check before they write.
func CheckPrefix(ctx context.Context, c redis.UniversalClient, keys Keys, installation string) error {
	owner, err := PrefixOwner(ctx, c, keys)
	if err != nil || owner == "" || owner == installation {
		return nil
	}
	return &PrefixTakenError{Prefix: keys.Name(), Owner: owner, Installation: installation}
}

// PrefixOwner returns the installation id recorded for keys' prefix, ""
// when none is.
func PrefixOwner(ctx context.Context, c redis.UniversalClient, keys Keys) (string, error) {
	owner, err := c.Get(ctx, ownerKey(keys)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis: read the owner of key prefix %s: %w", keys.Prefix(), err)
	}
	return owner, nil
}

// ResetPrefix deletes every key under keys' prefix, whoever owns it, and
// records installation as its owner. It returns how many keys it deleted.
// The installation's postald processes rebuild their dispatch state from
// SQL (reconciliation); the processes of a former owner stop at their next
// check.
func ResetPrefix(ctx context.Context, c redis.UniversalClient, keys Keys, installation string) (int, error) {
	deleted, err := DeleteAll(ctx, c, keys)
	if err != nil {
		return deleted, err
	}
	if err := c.Set(ctx, ownerKey(keys), installation, 0).Err(); err != nil {
		return deleted, fmt.Errorf("redis: record the owner of key prefix %s: %w", keys.Prefix(), err)
	}
	return deleted, nil
}

// DeleteAll deletes every key under keys' prefix, 500 at a time, and
// returns how many it deleted.
func DeleteAll(ctx context.Context, c redis.UniversalClient, keys Keys) (int, error) {
	found, err := ScanKeys(ctx, c, keys.Pattern())
	if err != nil {
		return 0, err
	}
	deleted := 0
	for len(found) > 0 {
		n := min(len(found), 500)
		if err := c.Unlink(ctx, found[:n]...).Err(); err != nil {
			return deleted, fmt.Errorf("redis: delete keys under %s: %w", keys.Prefix(), err)
		}
		deleted += n
		found = found[n:]
	}
	return deleted, nil
}
