package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/internal/atomicfile"
	"github.com/d2dmesh/d2d/report"
	"github.com/d2dmesh/d2d/signing"
)

// Outcomes of Store.Add.
const (
	OutcomeNew        = "new"        // first version of this report
	OutcomeUpdated    = "updated"    // a newer version replaced the current one
	OutcomeDuplicate  = "duplicate"  // this exact version was already stored
	OutcomeSuperseded = "superseded" // an older version: archived, not current
)

// Receipt records how one version of a report reached the controller.
type Receipt struct {
	Received time.Time `json:"received"`
	// Via is "pull", "push" or "run" (created by the controller itself).
	Via string `json:"via"`
	// From is the node that served or pushed it.
	From string `json:"from"`
	// Evidence is, for a pull, the node's signed resources/read result
	// the report came in: proof that the node served this content.
	Evidence *signing.Evidence `json:"evidence,omitempty"`
}

// Version is one stored version of a report.
type Version struct {
	SHA256   string   `json:"sha256"`
	Actions  int      `json:"actions"`
	Current  bool     `json:"current"`
	Receipts []string `json:"receipts,omitempty"` // "pull from PE-1 at …"
}

// Entry is one report in the controller's store.
type Entry struct {
	report.Entry
	Versions int `json:"versions"`
}

// StoreConfig configures a Store. The zero value works.
type StoreConfig struct {
	// MaxReports bounds the current reports kept. If zero, 100000: the
	// controller is the archive of the whole domain.
	MaxReports int
	// MaxAge after which a report is dropped. If zero, 10 years.
	MaxAge time.Duration
	// ReadOnly opens without the lock, for reading while a controller
	// runs (`d2d controller reports`): Add fails and nothing is repaired.
	ReadOnly bool
	Logger   *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

func (c *StoreConfig) populate() {
	if c.MaxReports <= 0 {
		c.MaxReports = 100000
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 10 * 365 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is the controller's report store. The newest version of each
// report is kept in a report.Store (dir/reports, crash-safe, one file per
// id); every distinct verified version is also kept, content-addressed,
// under dir/versions/<id>/<sha256>.json with a receipt per version. A
// report updated on its node after consented actions keeps its id and
// gets new content: the version with more actions (then the later last
// action) is current, and an older version arriving late is archived
// without replacing it. Adding the same content again changes nothing,
// so a pull or push repeated after a crash or a dropped connection
// neither loses nor duplicates a report.
type Store struct {
	dir     string
	cfg     StoreConfig
	reports *report.Store

	mu sync.Mutex
}

// OpenStore opens (creating) a controller store in dir and finishes what
// a crash interrupted: a version archived whose current copy was not yet
// written is made current.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	cfg.populate()
	rs, err := report.OpenStore(filepath.Join(dir, "reports"), report.StoreConfig{
		MaxReports: cfg.MaxReports, MaxAge: cfg.MaxAge, ReadOnly: cfg.ReadOnly, Logger: cfg.Logger, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, cfg: cfg, reports: rs}
	if cfg.ReadOnly {
		return s, nil
	}
	if err := s.reconcile(); err != nil {
		rs.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) versionDir(id string) string { return filepath.Join(s.dir, "versions", id) }

// reconcile makes the newest archived version of every report current.
func (s *Store) reconcile() error {
	root := filepath.Join(s.dir, "versions")
	des, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("controller: store: %w", err)
	}
	for _, de := range des {
		if !de.IsDir() || !report.ValidID(de.Name()) {
			continue
		}
		vs, err := s.loadVersions(de.Name())
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			continue
		}
		best := vs[0]
		for _, v := range vs[1:] {
			if newer(v, best) {
				best = v
			}
		}
		if _, err := s.place(best); err != nil {
			s.cfg.Logger.Error("reconciling report", "id", de.Name(), "err", err)
		}
	}
	return nil
}

// loadVersions decodes every archived version of id, removing temporary
// files a crash left.
func (s *Store) loadVersions(id string) ([]*report.Report, error) {
	dir := s.versionDir(id)
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("controller: store: %w", err)
	}
	var out []*report.Report
	for _, de := range des {
		name := de.Name()
		if atomicfile.IsTemp(name) {
			if !s.cfg.ReadOnly {
				_ = os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".receipt.json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("controller: store: %w", err)
		}
		r, err := report.Decode(b)
		if err != nil || ContentHash(b) != strings.TrimSuffix(name, ".json") {
			s.cfg.Logger.Error("skipping damaged archived version", "file", filepath.Join(dir, name), "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// newer reports whether a is a later version of the same report than b:
// actions are only ever appended, and an action's outcome changes with
// a later time stamp (collab.Workflow re-signs after each).
func newer(a, b *report.Report) bool {
	if len(a.Actions) != len(b.Actions) {
		return len(a.Actions) > len(b.Actions)
	}
	return lastAction(a).After(lastAction(b))
}

func lastAction(r *report.Report) time.Time {
	var t time.Time
	for _, a := range r.Actions {
		if a.At.After(t) {
			t = a.At
		}
	}
	return t
}

// Add stores one verified report version with its receipt and returns
// an Outcome* constant. The caller must have verified r (Verify does).
func (s *Store) Add(r *report.Report, rc Receipt) (string, error) {
	if s.cfg.ReadOnly {
		return "", report.ErrReadOnly
	}
	b, err := report.Encode(r)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.reports.Get(r.ID)
	switch {
	case errors.Is(err, report.ErrNotFound):
		cur = nil
	case err != nil:
		return "", err
	case cur.Creator != r.Creator || !cur.Created.Equal(r.Created):
		return "", fmt.Errorf("%w: %s is stored as created by %s at %s, this one by %s at %s", ErrConflict,
			r.ID, cur.Creator, cur.Created.Format(time.RFC3339), r.Creator, r.Created.Format(time.RFC3339))
	}
	// Archive first: a crash after this leaves a version that reconcile
	// makes current on the next open.
	hash := ContentHash(b)
	dir := s.versionDir(r.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("controller: store: %w", err)
	}
	if err := writeOnce(dir, hash+".json", b); err != nil {
		return "", err
	}
	if rc.Received.IsZero() {
		rc.Received = s.cfg.Now().UTC()
	}
	if err := s.addReceipt(dir, hash, rc); err != nil {
		return "", err
	}
	return s.placeLocked(r, cur)
}

// place makes r current if it is newer than what is stored.
func (s *Store) place(r *report.Report) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.reports.Get(r.ID)
	if errors.Is(err, report.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return "", err
	}
	return s.placeLocked(r, cur)
}

func (s *Store) placeLocked(r, cur *report.Report) (string, error) {
	if cur == nil {
		if err := s.reports.Put(r); err != nil {
			return "", err
		}
		return OutcomeNew, nil
	}
	cb, _ := report.Encode(cur)
	rb, _ := report.Encode(r)
	switch {
	case bytes.Equal(cb, rb):
		return OutcomeDuplicate, nil
	case newer(r, cur):
		if err := s.reports.Update(r); err != nil {
			return "", err
		}
		return OutcomeUpdated, nil
	}
	return OutcomeSuperseded, nil
}

// addReceipt appends rc to the version's receipt list unless an equal
// receipt (same via and from) is there: a repeated pull is one receipt.
func (s *Store) addReceipt(dir, hash string, rc Receipt) error {
	name := hash + ".receipt.json"
	var list []Receipt
	if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
		if err := json.Unmarshal(b, &list); err != nil {
			s.cfg.Logger.Warn("rewriting unreadable receipt", "file", name, "err", err)
			list = nil
		}
	}
	if slices.ContainsFunc(list, func(o Receipt) bool { return o.Via == rc.Via && o.From == rc.From }) {
		return nil
	}
	list = append(list, rc)
	b, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("controller: store: %w", err)
	}
	return writeAtomic(dir, name, b)
}

// Has reports whether a version of id is stored.
func (s *Store) Has(id string) bool {
	_, err := s.reports.Raw(id)
	return err == nil
}

// Get returns the current version of a report.
func (s *Store) Get(id string) (*report.Report, error) { return s.reports.Get(id) }

// Raw returns the canonical encoding of the current version.
func (s *Store) Raw(id string) ([]byte, error) { return s.reports.Raw(id) }

// List returns every report, oldest first.
func (s *Store) List() []Entry {
	var out []Entry
	for _, e := range s.reports.List() {
		n := 0
		if des, err := os.ReadDir(s.versionDir(e.ID)); err == nil {
			for _, de := range des {
				if strings.HasSuffix(de.Name(), ".json") && !strings.HasSuffix(de.Name(), ".receipt.json") {
					n++
				}
			}
		}
		out = append(out, Entry{Entry: e, Versions: n})
	}
	return out
}

// Versions lists the stored versions of id, current first.
func (s *Store) Versions(id string) ([]Version, error) {
	if !report.ValidID(id) {
		return nil, fmt.Errorf("%w: %s", report.ErrNotFound, id)
	}
	cur, err := s.reports.Raw(id)
	if err != nil {
		return nil, err
	}
	curHash := ContentHash(cur)
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.loadVersions(id)
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, r := range vs {
		b, _ := report.Encode(r)
		v := Version{SHA256: ContentHash(b), Actions: len(r.Actions)}
		v.Current = v.SHA256 == curHash
		if rb, err := os.ReadFile(filepath.Join(s.versionDir(id), v.SHA256+".receipt.json")); err == nil {
			var list []Receipt
			if json.Unmarshal(rb, &list) == nil {
				for _, rc := range list {
					v.Receipts = append(v.Receipts, fmt.Sprintf("%s from %s at %s", rc.Via, rc.From, rc.Received.UTC().Format(time.RFC3339)))
				}
			}
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b Version) int {
		switch {
		case a.Current && !b.Current:
			return -1
		case b.Current && !a.Current:
			return 1
		}
		return b.Actions - a.Actions
	})
	return out, nil
}

// Receipts returns the receipts of one version.
func (s *Store) Receipts(id, sha256 string) ([]Receipt, error) {
	if !report.ValidID(id) {
		return nil, fmt.Errorf("%w: %s", report.ErrNotFound, id)
	}
	b, err := os.ReadFile(filepath.Join(s.versionDir(id), filepath.Base(sha256)+".receipt.json"))
	if err != nil {
		return nil, fmt.Errorf("controller: store: %w", err)
	}
	var list []Receipt
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("controller: store: %w", err)
	}
	return list, nil
}

// Close releases the store. A second call returns a wrapped net.ErrClosed.
func (s *Store) Close() error { return s.reports.Close() }

// writeOnce writes dir/name atomically unless it exists: content-addressed
// files never change.
func writeOnce(dir, name string, b []byte) error {
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return nil
	}
	return writeAtomic(dir, name, b)
}

// writeAtomic writes dir/name crash-safely (package atomicfile).
func writeAtomic(dir, name string, b []byte) error {
	if err := atomicfile.Write(dir, name, b, 0o640); err != nil {
		return fmt.Errorf("controller: store: %w", err)
	}
	return nil
}
