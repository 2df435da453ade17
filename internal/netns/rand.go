package netns

import (
	"crypto/rand"
	"encoding/hex"
)

// randSuffix returns 10 hex digits: unique enough for temporary link names
// (IFNAMSIZ leaves 15 characters).
func randSuffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
