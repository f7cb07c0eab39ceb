package main

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const auth = "Bearer s3cret"

func newServer(t *testing.T, maxBody int) (*httptest.Server, string) {
	t.Helper()
	events := filepath.Join(t.TempDir(), "kongctl", "audit-logs", "default", "events.jsonl")
	h := &handler{path: "/audit-logs", expected: []byte(auth), maxBody: maxBody, store: &store{path: events}}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, events
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type exchange struct {
	status int
	body   string
	allow  string
}

func send(t *testing.T, method, url string, headers map[string]string, body []byte) exchange {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return exchange{resp.StatusCode, b.String(), resp.Header.Get("Allow")}
}

func TestChecksInTheOriginalsOrder(t *testing.T) {
	srv, events := newServer(t, 64)
	u := srv.URL + "/audit-logs"
	ok := map[string]string{"Authorization": auth}
	cases := []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		body    []byte
		want    exchange
	}{
		// The path is checked before the method and the Authorization.
		{"other path", "GET", srv.URL + "/other", nil, nil, exchange{404, "404 page not found\n", ""}},
		{"not POST", "GET", u, nil, nil, exchange{405, "method not allowed\n", "POST"}},
		{"no Authorization", "POST", u, nil, []byte("{}"), exchange{401, "unauthorized\n", ""}},
		{"wrong Authorization", "POST", u, map[string]string{"Authorization": "Bearer nope"}, []byte("{}"), exchange{401, "unauthorized\n", ""}},
		{"raw body over the limit", "POST", u, ok, bytes.Repeat([]byte("x"), 65), exchange{413, "request body too large\n", ""}},
		{"decoded body over the limit", "POST", u, map[string]string{"Authorization": auth, "Content-Encoding": "gzip"},
			gz(t, bytes.Repeat([]byte("\n"), 65)), exchange{413, "decoded request body too large\n", ""}},
		{"corrupt gzip", "POST", u, map[string]string{"Authorization": auth, "Content-Encoding": "br, GZip"},
			[]byte("not gzip"), exchange{400, "failed to decode request body\n", ""}},
		{"only blanks", "POST", u, ok, []byte(" \n\n \t\n"), exchange{202, "", ""}},
	}
	for _, c := range cases {
		if got := send(t, c.method, c.url, c.headers, c.body); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	// Nothing above stored a record, so the file was never even created.
	if _, err := os.Stat(events); !os.IsNotExist(err) {
		t.Fatalf("events file exists after refused or empty requests: %v", err)
	}
}

func TestStoresTrimmedRecordsAndDecodesOnlyAListedGzip(t *testing.T) {
	srv, events := newServer(t, 1<<20)
	u := srv.URL + "/audit-logs"
	// A padded Authorization still matches: both sides are trimmed.
	plain := send(t, "POST", u, map[string]string{"Authorization": "  " + auth + " "}, []byte("\n {\"a\":1} \r\n\n{\"b\":2}"))
	zipped := send(t, "POST", u, map[string]string{"Authorization": auth, "Content-Encoding": "identity, gzip"}, gz(t, []byte("{\"c\":3}\n")))
	// "application/gzip" is not the coding "gzip": stored as it came.
	asIs := send(t, "POST", u, map[string]string{"Authorization": auth, "Content-Encoding": "application/gzip"}, []byte("{\"d\":4}"))
	for _, e := range []exchange{plain, zipped, asIs} {
		if e.status != 202 || e.body != "" {
			t.Fatalf("got %+v, want 202 with no body", e)
		}
	}
	got, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"; string(got) != want {
		t.Fatalf("events file %q, want %q", got, want)
	}
	for path, mode := range map[string]os.FileMode{events: 0o600, filepath.Dir(events): 0o700 | os.ModeDir} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), mode)
		}
	}
}

func TestDefaultEventsFileFollowsTheOriginalsLayout(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	for profile, want := range map[string]string{
		"default":      "/cfg/kongctl/audit-logs/default/events.jsonl",
		" dev profile": "/cfg/kongctl/audit-logs/dev_profile/events.jsonl",
		"":             "/cfg/kongctl/audit-logs/default/events.jsonl",
		"a/b":          "/cfg/kongctl/audit-logs/a_b/events.jsonl",
	} {
		got, err := defaultEventsFile(profile)
		if err != nil || got != want {
			t.Errorf("profile %q: got %q, %v; want %q", profile, got, err, want)
		}
	}
	if !strings.HasSuffix(normalizePath(" audit "), "/audit") {
		t.Errorf("normalizePath(\" audit \") = %q", normalizePath(" audit "))
	}
}
