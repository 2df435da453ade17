package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/d2dmesh/d2d/internal/atomicfile"
)

// Store errors.
var (
	ErrNotFound = errors.New("report: no such report")
	ErrExists   = errors.New("report: a different report with this id is stored")
	ErrFull     = errors.New("report: store full of unpulled reports")
	ErrExpired  = errors.New("report: older than the store's age limit")
	ErrCorrupt  = errors.New("report: stored file is corrupt")
	ErrReadOnly = errors.New("report: store opened read-only")
	ErrLocked   = errors.New("report: store is in use by another process")
)

// StoreConfig configures a Store. The zero value works.
type StoreConfig struct {
	// MaxReports is how many reports are kept; if zero, 1000 (a month of
	// a busy node's runs at a few tens of kilobytes each).
	MaxReports int
	// MaxAge after which a report is deleted even if never pulled; if
	// zero, 30 days: long enough to outlast a controller outage.
	MaxAge time.Duration
	// ReadOnly opens without the lock and never writes: corrupt files are
	// skipped (and logged) instead of quarantined, Put and MarkPulled fail.
	ReadOnly bool
	// Logger; if nil, logs are discarded.
	Logger *slog.Logger
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

func (c *StoreConfig) populate() {
	if c.MaxReports <= 0 {
		c.MaxReports = 1000
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "report.store")
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Entry describes one stored report.
type Entry struct {
	ID       string    `json:"id"`
	Creator  string    `json:"creator"`
	Created  time.Time `json:"created"`
	Intent   string    `json:"intent"`
	Summary  string    `json:"summary,omitempty"`
	Size     int64     `json:"size"`
	Pulled   bool      `json:"pulled"`
	PulledBy string    `json:"pulledBy,omitempty"`
	PulledAt time.Time `json:"pulledAt,omitzero"`
}

// pullMark is the content of an <id>.pulled file.
type pullMark struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

const (
	reportExt  = ".json"
	pulledExt  = ".pulled"
	corruptExt = ".corrupt"
	tmpPrefix  = atomicfile.TempPrefix
	lockName   = ".lock"
)

// Store is the crash-safe on-box report store (see the package
// documentation for the file layout and the retention rule). It is safe
// for concurrent use; one process at a time may open a directory for
// writing.
type Store struct {
	dir  string
	cfg  StoreConfig
	lock *os.File

	mu     sync.Mutex
	index  map[string]*Entry
	closed bool
}

// OpenStore opens (creating it if needed) the store in dir, cleans up
// after a crash and applies retention.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	cfg.populate()
	s := &Store{dir: dir, cfg: cfg, index: map[string]*Entry{}}
	if !cfg.ReadOnly {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("report: store: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("report: store: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
		}
		s.lock = f
	}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if !cfg.ReadOnly {
		s.mu.Lock()
		_, err := s.pruneLocked(0)
		s.mu.Unlock()
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

func (s *Store) load() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("report: store: %w", err)
	}
	log := s.cfg.Logger
	changed := false
	var marks []string
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			if s.cfg.ReadOnly {
				continue
			}
			log.Info("removing temporary file left by a crash", "file", name)
			if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("report: store: %w", err)
			}
			changed = true
		case strings.HasSuffix(name, pulledExt):
			marks = append(marks, name)
		case strings.HasSuffix(name, reportExt):
			id := strings.TrimSuffix(name, reportExt)
			e, err := s.readEntry(id)
			if err != nil {
				if s.cfg.ReadOnly {
					log.Warn("skipping corrupt report", "file", name, "reason", err)
					continue
				}
				if err := s.quarantine(id, err); err != nil {
					return err
				}
				changed = true
				continue
			}
			s.index[id] = e
		}
	}
	for _, name := range marks {
		id := strings.TrimSuffix(name, pulledExt)
		e, ok := s.index[id]
		if !ok {
			if s.cfg.ReadOnly {
				continue
			}
			log.Info("removing pull mark without report", "file", name)
			if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("report: store: %w", err)
			}
			changed = true
			continue
		}
		e.Pulled = true
		b, err := os.ReadFile(s.path(name))
		var m pullMark
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			log.Warn("unreadable pull mark; report counts as pulled", "file", name, "reason", err)
			continue
		}
		e.PulledBy, e.PulledAt = m.By, m.At
	}
	if changed {
		return syncDir(s.dir)
	}
	return nil
}

// readEntry reads, decodes and self-checks one report file.
func (s *Store) readEntry(id string) (*Entry, error) {
	r, size, err := s.read(id)
	if err != nil {
		return nil, err
	}
	return &Entry{ID: r.ID, Creator: r.Creator, Created: r.Created, Intent: r.Intent,
		Summary: r.Hypothesis.Summary, Size: size}, nil
}

func (s *Store) read(id string) (*Report, int64, error) {
	f, err := os.Open(s.path(id + reportExt))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxReportSize+1))
	if err != nil {
		return nil, 0, err
	}
	r, err := Decode(b)
	if err != nil {
		return nil, 0, err
	}
	if r.ID != id {
		return nil, 0, fmt.Errorf("%w: file %s holds report %s", ErrInvalid, id+reportExt, r.ID)
	}
	if err := r.checkSelf(); err != nil {
		return nil, 0, err
	}
	return r, int64(len(b)), nil
}

// quarantine renames a bad report file out of the way, keeping it for
// inspection.
func (s *Store) quarantine(id string, reason error) error {
	from := s.path(id + reportExt)
	to := from + corruptExt
	if _, err := os.Stat(to); err == nil {
		to = fmt.Sprintf("%s.%d%s", from, s.cfg.Now().UnixNano(), corruptExt)
	}
	s.cfg.Logger.Error("quarantining corrupt report", "file", filepath.Base(from), "to", filepath.Base(to), "reason", reason)
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("report: store: quarantine: %w", err)
	}
	if err := os.Remove(s.path(id + pulledExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("report: store: %w", err)
	}
	return nil
}

func (s *Store) checkWritable() error {
	switch {
	case s.closed:
		return fmt.Errorf("report: store: %w", net.ErrClosed)
	case s.cfg.ReadOnly:
		return ErrReadOnly
	}
	return nil
}

// Put stores r, which must be signed by its creator. Putting a report
// already stored with the same content is a no-op; with different content
// it fails with ErrExists (reports are immutable once signed). Retention
// runs first: Put fails with ErrFull when only unpulled reports younger
// than MaxAge would have to go.
func (s *Store) Put(r *Report) error {
	b, err := s.encodeLocked(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.cfg.Now().Sub(r.Created) > s.cfg.MaxAge {
		return fmt.Errorf("%w: created %s", ErrExpired, r.Created.Format(time.RFC3339))
	}
	if _, ok := s.index[r.ID]; ok {
		have, err := os.ReadFile(s.path(r.ID + reportExt))
		if err == nil && bytes.Equal(have, b) {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrExists, r.ID)
	}
	if _, err := s.pruneLocked(1); err != nil {
		return err
	}
	if len(s.index) >= s.cfg.MaxReports {
		return fmt.Errorf("%w (%d reports)", ErrFull, len(s.index))
	}
	if err := writeFileAtomic(s.dir, r.ID+reportExt, b); err != nil {
		return err
	}
	s.index[r.ID] = &Entry{ID: r.ID, Creator: r.Creator, Created: r.Created, Intent: r.Intent,
		Summary: r.Hypothesis.Summary, Size: int64(len(b))}
	return nil
}

// encodeLocked checks that r is signed by its creator and encodes it,
// then takes the store's lock, which the caller releases; on error the
// lock is not held.
func (s *Store) encodeLocked(r *Report) ([]byte, error) {
	if err := r.checkSelf(); err != nil {
		return nil, err
	}
	b, err := Encode(r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxReportSize {
		return nil, ErrTooLarge
	}
	s.mu.Lock()
	if err := s.checkWritable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return b, nil
}

// Update replaces a stored report by a newer signed version of itself:
// the same id and creator, re-signed after consented actions were added
// (draft 003 §5.3.1 step 5 happens before the operator's consent in step
// 6). The pull mark is removed, so a controller that already pulled the
// first version pulls the final one too. The new file replaces the old
// one atomically: a crash leaves one version or the other, never a mix.
func (s *Store) Update(r *Report) error {
	b, err := s.encodeLocked(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	e, ok := s.index[r.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, r.ID)
	}
	if e.Creator != r.Creator || !e.Created.Equal(r.Created) {
		return fmt.Errorf("%w: %s: an update must keep the creator and creation time", ErrInvalid, r.ID)
	}
	if err := writeFileAtomic(s.dir, r.ID+reportExt, b); err != nil {
		return err
	}
	if e.Pulled {
		if err := os.Remove(s.path(r.ID + pulledExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("report: store: %w", err)
		}
	}
	*e = Entry{ID: r.ID, Creator: r.Creator, Created: r.Created, Intent: r.Intent, Summary: r.Hypothesis.Summary, Size: int64(len(b))}
	return nil
}

// Get returns a stored report. A file found corrupt is quarantined and
// ErrCorrupt returned.
func (s *Store) Get(id string) (*Report, error) {
	b, err := s.Raw(id)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// Raw returns a stored report's canonical encoding, as served to a
// controller.
func (s *Store) Raw(id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("report: store: %w", net.ErrClosed)
	}
	if _, ok := s.index[id]; !ok || !ValidID(id) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	r, _, err := s.read(id)
	if err != nil {
		if !s.cfg.ReadOnly {
			if qerr := s.quarantine(id, err); qerr != nil {
				return nil, qerr
			}
			delete(s.index, id)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, id, err)
	}
	return Encode(r)
}

// List returns every stored report, oldest first (ties by id).
func (s *Store) List() []Entry {
	return s.filter(func(*Entry) bool { return true })
}

// Unpulled returns the reports no controller has pulled, oldest first.
func (s *Store) Unpulled() []Entry {
	return s.filter(func(e *Entry) bool { return !e.Pulled })
}

func (s *Store) filter(keep func(*Entry) bool) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.index))
	for _, e := range s.index {
		if keep(e) {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out
}

// MarkPulled records that by (a controller) has pulled report id. Marking
// again updates the mark.
func (s *Store) MarkPulled(id, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	e, ok := s.index[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	m := pullMark{By: by, At: s.cfg.Now().UTC()}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("report: store: %w", err)
	}
	if err := writeFileAtomic(s.dir, id+pulledExt, b); err != nil {
		return err
	}
	e.Pulled, e.PulledBy, e.PulledAt = true, m.By, m.At
	return nil
}

// Delete removes a report and its pull mark.
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return err
	}
	if _, ok := s.index[id]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := s.deleteLocked(id); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// deleteLocked removes the report before its mark: a crash in between
// leaves an orphan mark, which the next open removes.
func (s *Store) deleteLocked(id string) error {
	for _, name := range []string{id + reportExt, id + pulledExt} {
		if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("report: store: %w", err)
		}
	}
	delete(s.index, id)
	return nil
}

// Prune applies the retention rule now and returns the ids it deleted.
func (s *Store) Prune() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(); err != nil {
		return nil, err
	}
	return s.pruneLocked(0)
}

// pruneLocked applies retention, leaving room for that many more reports.
func (s *Store) pruneLocked(room int) ([]string, error) {
	now := s.cfg.Now()
	var gone []string
	var pulled []*Entry
	for id, e := range s.index {
		if now.Sub(e.Created) > s.cfg.MaxAge {
			gone = append(gone, id)
		} else if e.Pulled {
			pulled = append(pulled, e)
		}
	}
	slices.SortFunc(pulled, func(a, b *Entry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	for over := len(s.index) - len(gone) + room - s.cfg.MaxReports; over > 0 && len(pulled) > 0; over-- {
		gone = append(gone, pulled[0].ID)
		pulled = pulled[1:]
	}
	if len(gone) == 0 {
		return nil, nil
	}
	slices.Sort(gone)
	for _, id := range gone {
		e := s.index[id]
		s.cfg.Logger.Info("retention: deleting report", "id", id, "created", e.Created, "pulled", e.Pulled)
		if err := s.deleteLocked(id); err != nil {
			return nil, err
		}
	}
	return gone, syncDir(s.dir)
}

// Close releases the store's lock. A second call returns an error
// wrapping net.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("report: store: %w", net.ErrClosed)
	}
	s.closed = true
	if s.lock != nil {
		return s.lock.Close() // closing the descriptor drops the flock
	}
	return nil
}

// writeFileAtomic writes dir/name crash-safely (package atomicfile).
func writeFileAtomic(dir, name string, b []byte) error {
	if err := atomicfile.Write(dir, name, b, 0o640); err != nil {
		return fmt.Errorf("report: store: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("report: store: sync dir: %w", err)
	}
	return nil
}
