module github.com/d2dmesh/d2d

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0
	github.com/google/go-cmp v0.7.0
	github.com/vishvananda/netns v0.0.5
)

require golang.org/x/sys v0.50.0 // indirect
