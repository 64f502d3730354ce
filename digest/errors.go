package digest

import "errors"

// ErrMalformed is returned, wrapped with a detail, by ParseCredentials when a
// header is not well-formed Digest credentials. The detail names parameters
// and byte offsets but never repeats a value from the header, so the error
// text is safe to log and to put in a reason phrase.
var ErrMalformed = errors.New("digest: malformed credentials")

// ErrUnsupportedScheme is returned, unwrapped, by ParseCredentials when the
// header uses a scheme other than Digest (for example Bearer, RFC 8898).
// Such a header is another mechanism's business, not a malformed one.
var ErrUnsupportedScheme = errors.New("digest: unsupported authorization scheme")

// ErrUnsupportedAlgorithm is returned, wrapped with the name, by
// ParseAlgorithm for anything but MD5, SHA-256 and SHA-512-256 (the -sess
// variants included).
var ErrUnsupportedAlgorithm = errors.New("digest: unsupported algorithm")
