package report

import (
	"strconv"
	"strings"
)

// SyslogEnterprise is the private enterprise number in the structured
// data id "d2d-audit@32473". 32473 is the number RFC 5612 reserves for
// documentation; a deployment with its own number sets it here.
var SyslogEnterprise = "32473"

// Syslog RFC 5424 facility and severities used for audit records.
const (
	syslogFacilityAudit = 13 // "log audit" (RFC 5424 §6.2.1, table 1)
	syslogInfo          = 6
	syslogWarning       = 4
)

// SyslogFormatter formats audit records as RFC 5424 messages. The zero
// value works.
type SyslogFormatter struct {
	// Hostname for the HOSTNAME field; if empty, "-" (NILVALUE).
	Hostname string
	// AppName; if empty, "d2d".
	AppName string
}

// FormatSyslog formats rec with the zero SyslogFormatter.
func FormatSyslog(rec Record) []byte { return SyslogFormatter{}.Format(rec) }

// Format returns one RFC 5424 message (no trailing newline; octet-counting
// or LF framing is the transport's business, RFC 6587 / RFC 5425):
//
//	<109>1 2025-10-30T14:23:42.123456Z PE-1 d2d - audit [d2d-audit@32473
//	 seq="42" dir="in" session="…" peer="P-2" method="tools/call"
//	 target="ietf-srv6-ping" argsHash="…" resultHash="…" prev="…"
//	 hash="…"] in tools/call ietf-srv6-ping P-2 ok
//
// Failed calls are sent with severity warning, others informational.
func (f SyslogFormatter) Format(rec Record) []byte {
	sev := syslogInfo
	if rec.Error != "" {
		sev = syslogWarning
	}
	var b strings.Builder
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(syslogFacilityAudit*8 + sev))
	b.WriteString(">1 ")
	// RFC 5424 §6.2.3: at most six fractional digits.
	b.WriteString(rec.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(headerField(f.Hostname, 255))
	b.WriteByte(' ')
	app := f.AppName
	if app == "" {
		app = "d2d"
	}
	b.WriteString(headerField(app, 48))
	b.WriteString(" - audit [d2d-audit@")
	b.WriteString(SyslogEnterprise)
	param := func(name, v string) {
		if v == "" {
			return
		}
		b.WriteByte(' ')
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(sdEscape(v))
		b.WriteByte('"')
	}
	param("seq", strconv.FormatUint(rec.Seq, 10))
	param("dir", rec.Direction)
	param("session", rec.Session)
	param("peer", rec.Peer)
	param("method", rec.Method)
	param("target", rec.Target)
	param("argsHash", rec.ArgsHash)
	param("resultHash", rec.ResultHash)
	param("error", rec.Error)
	param("prev", rec.Prev)
	param("hash", rec.Hash)
	b.WriteString("] ")
	b.WriteString(rec.Direction + " " + rec.Method)
	if rec.Target != "" {
		b.WriteString(" " + rec.Target)
	}
	if rec.Peer != "" {
		b.WriteString(" " + rec.Peer)
	}
	if rec.Error != "" {
		b.WriteString(" error: " + strings.ReplaceAll(rec.Error, "\n", " "))
	} else {
		b.WriteString(" ok")
	}
	return []byte(b.String())
}

// headerField makes s a valid header field: printable US-ASCII without
// spaces, at most max characters, "-" when empty.
func headerField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// sdEscape escapes a PARAM-VALUE (RFC 5424 §6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}
