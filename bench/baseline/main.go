// Command baseline is the benchmark's model of the original Go listener
// (Kong/kongctl `listen`, internal/auditlogs and create_listener.go, as
// described in /work/shared/reference/kongctl-behaviour.md §3): the same
// request checks in the same order, the same body limits, the same gzip
// rule, the same record splitting and the same storage (the events file
// opened per request, each record written with its newline, one fsync per
// request, all under one mutex), so that bench/run.sh can measure what a
// user of the original got on the same machine. Konnect calls, the
// banner, state files and tail printing are left out: they are not on the
// request path (tail mode's printing is, but run.sh measures `listen`).
//
// Standard library only, buildable with Debian bookworm's golang-go (1.19).
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19090", "listen address (the original's --listen-address)")
	path := flag.String("path", "/audit-logs", "request path (the original's --path)")
	auth := flag.String("auth", "", "Authorization value every request must carry, compared trimmed (the original's --authorization; required)")
	file := flag.String("file", "", "events file to append to (default: the original's <config dir>/kongctl/audit-logs/<profile>/events.jsonl)")
	profile := flag.String("profile", "default", "profile naming the storage directory when -file is not given")
	maxBody := flag.Int("max-body-bytes", 1<<20, "largest body accepted, raw and decoded (the original's --max-body-bytes)")
	flag.Parse()

	expected := strings.TrimSpace(*auth)
	if expected == "" {
		log.Fatal("-auth must not be empty (the original requires --authorization)")
	}
	if *maxBody <= 0 {
		log.Fatal("-max-body-bytes must be greater than zero")
	}
	events := *file
	if events == "" {
		var err error
		if events, err = defaultEventsFile(*profile); err != nil {
			log.Fatal(err)
		}
	}

	h := &handler{
		path:     normalizePath(*path),
		expected: []byte(expected),
		maxBody:  *maxBody,
		store:    &store{path: events},
	}
	// The original registers its handler on "/" of a ServeMux, so requests
	// go through the mux's path cleaning before the handler's own checks.
	mux := http.NewServeMux()
	mux.Handle("/", h)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s%s, events file %s\n", ln.Addr(), h.path, events)

	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-served:
		log.Fatal(err)
	case <-ctx.Done():
		// Like the original: finish in-flight requests, for at most 5 s.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil {
			log.Fatal(err)
		}
	}
}

// defaultEventsFile is where the original keeps a profile's events:
// $XDG_CONFIG_HOME/kongctl (else ~/.config/kongctl), then
// audit-logs/<profile>/events.jsonl, the profile reduced to letters,
// digits, '-', '_' and '.' (anything else becomes '_'; empty is "default").
func defaultEventsFile(profile string) (string, error) {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no -file, and no config directory: %w", err)
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "kongctl", "audit-logs", safeProfile(profile), "events.jsonl"), nil
}

func safeProfile(profile string) string {
	profile = strings.TrimSpace(profile)
	safe := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, profile)
	if safe == "" {
		return "default"
	}
	return safe
}

// normalizePath: trimmed, empty means /audit-logs, a leading '/' added.
func normalizePath(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return "/audit-logs"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

var errDecodedTooLarge = errors.New("decoded request body too large")

type handler struct {
	path     string
	expected []byte
	maxBody  int
	store    *store
}

// ServeHTTP runs the original's checks in its order; the response texts
// are its http.Error texts.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	given := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
	if len(given) == 0 || subtle.ConstantTimeCompare(given, h.expected) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	defer r.Body.Close()

	// One byte past the limit tells "at the limit" from "over it".
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.maxBody)+1))
	if err != nil {
		http.Error(w, "failed to read request body", http.StatusBadRequest)
		return
	}
	if len(body) > h.maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if listsGzip(r.Header.Get("Content-Encoding")) {
		if body, err = gunzip(body, h.maxBody); err != nil {
			if errors.Is(err, errDecodedTooLarge) {
				http.Error(w, "decoded request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "failed to decode request body", http.StatusBadRequest)
			return
		}
	}
	if err := h.store.append(splitRecords(body)); err != nil {
		http.Error(w, "failed to persist audit-log event", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// listsGzip: one of the comma-separated codings is exactly "gzip" (any
// case). So "x-gzip" and "application/gzip" (what Konnect sends) are not
// decoded by the original: their bytes are stored as they came.
func listsGzip(contentEncoding string) bool {
	for _, coding := range strings.Split(strings.ToLower(contentEncoding), ",") {
		if strings.TrimSpace(coding) == "gzip" {
			return true
		}
	}
	return false
}

// gunzip decodes the whole body into memory, reading one byte past the
// limit to tell a body at the limit from one over it.
func gunzip(body []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	decoded, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(decoded) > limit {
		return nil, errDecodedTooLarge
	}
	return decoded, nil
}

// splitRecords: the payload trimmed and cut at '\n', each line trimmed,
// blank lines dropped, no JSON check. Each record is its own copy, as in
// the original (which hands the records to tail mode's printer too).
func splitRecords(payload []byte) [][]byte {
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return nil
	}
	var records [][]byte
	for _, line := range bytes.Split(payload, []byte{'\n'}) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			records = append(records, append([]byte(nil), line...))
		}
	}
	return records
}

// store appends records to the events file the way the original's store
// does, which is what makes it durable and what bounds its rate: per
// request and under one mutex, the directory made (0700), the file opened
// for append (created 0600), a write for each record and another for its
// newline, one fsync, and the file closed. No request's records are
// written until the previous request's fsync has returned.
type store struct {
	path string
	mu   sync.Mutex
}

var newline = []byte{'\n'}

func (s *store) append(records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, record := range records {
		if _, err := f.Write(record); err != nil {
			return err
		}
		if _, err := f.Write(newline); err != nil {
			return err
		}
	}
	// os.File.Sync is fsync(2): data and metadata.
	return f.Sync()
}
