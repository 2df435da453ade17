package node

import (
	"bufio"
	"os"
	"strings"
)

// maxHistory bounds the shell history kept on disk and in memory.
const maxHistory = 500

// fileHistory is the shell's input history, newest last in memory and in
// the file. Each entry is appended to the file as it is typed, so history
// survives a killed shell; the file is rewritten trimmed when it has grown
// to twice the bound.
type fileHistory struct {
	path    string
	entries []string
	written int
}

func openHistory(path string) *fileHistory {
	h := &fileHistory{path: path}
	f, err := os.Open(path)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			h.entries = append(h.entries, l)
		}
	}
	h.written = len(h.entries)
	if len(h.entries) > maxHistory {
		h.entries = h.entries[len(h.entries)-maxHistory:]
	}
	return h
}

// Add records an entry; history is best effort and never fails the shell.
func (h *fileHistory) Add(e string) {
	e = strings.TrimSpace(e)
	if e == "" || strings.ContainsAny(e, "\r\n") || (len(h.entries) > 0 && h.entries[len(h.entries)-1] == e) {
		return
	}
	h.entries = append(h.entries, e)
	if len(h.entries) > maxHistory {
		h.entries = h.entries[1:]
	}
	h.written++
	if h.written > 2*maxHistory {
		h.rewrite()
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.WriteString(e + "\n")
	f.Close()
}

func (h *fileHistory) rewrite() {
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(h.entries, "\n")+"\n"), 0o600); err != nil {
		return
	}
	if os.Rename(tmp, h.path) == nil {
		h.written = len(h.entries)
	}
}

// Len returns the number of entries.
func (h *fileHistory) Len() int { return len(h.entries) }

// At returns entry idx, 0 being the newest.
func (h *fileHistory) At(idx int) string { return h.entries[len(h.entries)-1-idx] }
