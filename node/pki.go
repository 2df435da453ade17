package node

import (
	"errors"
	"fmt"
	"os"

	"github.com/d2dmesh/d2d/controller"
	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/signing"
)

// startPKI loads the revocation list on disk and, with a CA service
// configured, starts renewing the certificate and fetching the list
// (package enroll).
func (a *Agent) startPKI() error {
	if l, err := signing.LoadRevocationList(a.cfg.PKI.Revocations); err == nil {
		if err := a.trust.SetRevocations(l); err != nil {
			return fmt.Errorf("node: revocation list %s: %w", a.cfg.PKI.Revocations, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("revocation list not loaded", "file", a.cfg.PKI.Revocations, "err", err)
	}
	if a.cfg.PKI.Service == "" {
		return nil
	}
	m, err := controller.ParseMember(a.cfg.PKI.Service)
	if err != nil {
		return fmt.Errorf("%w: pki.service: %v", ErrConfig, err)
	}
	a.renewer, err = enroll.StartRenewer(enroll.RenewerConfig{
		Identity:           a.id,
		Trust:              a.trust,
		Endpoint:           a.endpoint,
		Service:            m.Peer,
		CertFile:           a.cfg.PKI.Cert,
		RevocationFile:     a.cfg.PKI.Revocations,
		RevocationInterval: a.cfg.PKI.RevocationInterval,
		OnRevocations: func(l *signing.RevocationList) {
			if n := a.endpoint.CloseRevoked(); n > 0 {
				a.log.Info("closed sessions of revoked peers", "sessions", n, "list", l.Number)
			}
		},
		OnRenew: a.advertiseRenewal,
		Logger:  a.opt.Logger,
	})
	return err
}

// advertiseRenewal tells the domain the renewed certificate's thumbprint,
// which peers pin when they dial.
func (a *Agent) advertiseRenewal(id *signing.Identity) {
	a.discMu.Lock()
	m := a.members
	a.discMu.Unlock()
	if m == nil {
		return
	}
	ad := m.Self()
	ad.Thumbprint = id.Thumbprint()
	if err := m.UpdateSelf(ad); err != nil {
		a.log.Warn("advertising the renewed certificate", "err", err)
	}
}

// Renewer returns the certificate renewer, nil without a CA service.
func (a *Agent) Renewer() *enroll.Renewer { return a.renewer }
