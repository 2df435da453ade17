package linux_test

import (
	"context"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device/devicetest"
)

// TestContract runs the backend contract suite on the headline scenario's
// path in network namespaces.
func TestContract(t *testing.T) {
	l := newLab(t)
	head := l.be["PE-1"]
	devicetest.Run(t, devicetest.Fixture{
		Head: head, Mid: l.be["P-2"], Tail: l.be["PE-3"],
		ACL: "2001", Rule: "10",
		InjectACLDrop: func(tb testing.TB, rate float64) func() {
			if err := head.InstallACLDrop(context.Background(), "2001", "10", "eth1", rate); err != nil {
				tb.Fatal(err)
			}
			return func() {
				if err := head.Cleanup(context.Background()); err != nil {
					tb.Error(err)
				}
			}
		},
		Interface: "eth1",
		Interval:  time.Millisecond,
	})
}
