package report

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/d2dmesh/d2d/signing"
)

// Assembly is what a finished troubleshooting run hands to Assemble.
// Evidence must already have been verified by the caller (collab verifies
// each result against its own request as it arrives).
type Assembly struct {
	// ID of the report; if empty, NewID().
	ID      string
	Creator string
	// Created; if zero, the current time. Kept to the millisecond, in UTC.
	Created      time.Time
	Intent       string
	Plan         []PlanStep
	Hypothesis   Hypothesis
	Alternatives []Hypothesis
	// Evidence in the order gathered; an empty Ref is assigned "e1", "e2",
	// … skipping refs already in use.
	Evidence  []signing.Evidence
	Untrusted []Untrusted
	Actions   []Action
	// KeepEnvelopeCerts leaves certificates inside evidence envelopes
	// instead of moving them, one per node, to Report.Certificates.
	KeepEnvelopeCerts bool
}

// Assemble builds an unsigned report from a and checks it: refs unique,
// every hypothesis and plan ref resolves, untrusted nodes listed once.
// Sign the result with (*Report).Sign.
func Assemble(a Assembly) (*Report, error) {
	r := &Report{
		ID:           a.ID,
		Creator:      a.Creator,
		Created:      a.Created,
		Intent:       a.Intent,
		Plan:         a.Plan,
		Hypothesis:   a.Hypothesis,
		Alternatives: a.Alternatives,
		Actions:      a.Actions,
		Evidence:     make([]signing.Evidence, 0, len(a.Evidence)),
	}
	if r.ID == "" {
		r.ID = NewID()
	}
	r.URI = URIPrefix + r.ID
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	r.Created = r.Created.UTC().Truncate(time.Millisecond)
	for i := range r.Actions {
		r.Actions[i].At = r.Actions[i].At.UTC().Truncate(time.Millisecond)
	}
	if err := r.checkShape(); err != nil {
		return nil, err
	}

	used := map[string]bool{}
	for _, ev := range a.Evidence {
		if ev.Ref != "" {
			if used[ev.Ref] {
				return nil, fmt.Errorf("%w: %w %q", ErrInvalid, ErrDuplicateRef, ev.Ref)
			}
			used[ev.Ref] = true
		}
	}
	next := 1
	for _, ev := range a.Evidence {
		if ev.Ref == "" {
			for used["e"+strconv.Itoa(next)] {
				next++
			}
			ev.Ref = "e" + strconv.Itoa(next)
			used[ev.Ref] = true
		}
		if !a.KeepEnvelopeCerts && len(ev.Envelope.Cert) > 0 {
			have, ok := r.Certificates[ev.Node]
			switch {
			case !ok:
				if r.Certificates == nil {
					r.Certificates = map[string][]byte{}
				}
				r.Certificates[ev.Node] = ev.Envelope.Cert
				ev.Envelope.Cert = nil
			case bytes.Equal(have, ev.Envelope.Cert):
				ev.Envelope.Cert = nil
			}
			// A node that changed certificate mid-run keeps the second
			// one in its envelope.
		}
		r.Evidence = append(r.Evidence, ev)
	}

	check := func(path string, refs []string) error {
		for i, ref := range refs {
			if !used[ref] {
				return fmt.Errorf("%w: %s.evidenceRefs[%d] %q: %w", ErrInvalid, path, i, ref, ErrNoSuchEvidence)
			}
		}
		return nil
	}
	if err := check("hypothesis", r.Hypothesis.EvidenceRefs); err != nil {
		return nil, err
	}
	for i, h := range r.Alternatives {
		if err := check(fmt.Sprintf("alternatives[%d]", i), h.EvidenceRefs); err != nil {
			return nil, err
		}
	}
	for i, s := range r.Plan {
		if s.Evidence != "" && !used[s.Evidence] {
			return nil, fmt.Errorf("%w: plan[%d].evidence %q: %w", ErrInvalid, i, s.Evidence, ErrNoSuchEvidence)
		}
	}

	seen := map[string]int{}
	for _, u := range a.Untrusted {
		if j, dup := seen[u.Node]; dup {
			r.Untrusted[j].Reason += "; " + u.Reason
			continue
		}
		seen[u.Node] = len(r.Untrusted)
		r.Untrusted = append(r.Untrusted, u)
	}
	return r, nil
}
