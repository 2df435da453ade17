package signing

// PrivSeedForTest exposes an identity's seed to the black-box tests that
// check it never leaks.
func PrivSeedForTest(id *Identity) []byte { return id.key.k.Seed() }
