// Package tidings is the Go SDK for tidings formatters, built with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared (Go 1.24 or newer): a WASI reactor that exports ABI v1's warm entry
// points (warm.go), so one module serves fresh calls and warm instances.
//
// A formatter answers one JSON request with one JSON result (the ABI: guest-sdk/README.md; the
// shapes: guest-sdk/schema/). This package decodes the request into typed structs (with
// encoding/json: fields tidings does not name here stay reachable through Raw), calls your
// function, and writes its result:
//
//	func main() {
//		tidings.MessageFormatter(func(a *tidings.MessageHead) (*tidings.Message, error) {
//			return tidings.Plain("STATUS: " + tidings.TitleCase(a.ResultsText)), nil
//		})
//	}
//
// Take *MessageArgs to read the build too; MessageHead (or a struct of your own without a
// build field) lets the SDK skip decoding it. Return (nil, nil) to send nothing; return an
// error to fail the call (its text goes to stderr, which tidings logs under the formatter's
// name, and the reporter falls back to its built-in message or to nothing, as its on_error
// says).
package tidings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// Master is what formatters know of the CI master.
type Master struct {
	Title       string `json:"title"`
	BuildbotURL string `json:"buildbotURL"`
}

// Reporter says which reporter asks.
type Reporter struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Builder is a build's builder.
type Builder struct {
	BuilderID *int64   `json:"builderid"`
	Name      string   `json:"name"`
	Tags      []string `json:"tags"`
}

// LogContent is a log's text; stdio logs prefix each line with h, o or e.
type LogContent struct {
	LogID     *int64 `json:"logid"`
	FirstLine int64  `json:"firstline"`
	Content   string `json:"content"`
}

// Log is one log of a step.
type Log struct {
	LogID   *int64      `json:"logid"`
	Name    string      `json:"name"`
	Type    string      `json:"type"`
	URL     string      `json:"url"`
	Content *LogContent `json:"content"`
}

// Step is one step of a build.
type Step struct {
	StepID      *int64 `json:"stepid"`
	Number      int64  `json:"number"`
	Name        string `json:"name"`
	Complete    bool   `json:"complete"`
	StateString string `json:"state_string"`
	Results     *int64 `json:"results"`
	Logs        []Log  `json:"logs"`
}

// Patch is a source stamp's patch.
type Patch struct {
	Author  *string `json:"author"`
	Comment *string `json:"comment"`
	Body    *string `json:"body"`
}

// SourceStamp says what was built.
type SourceStamp struct {
	Codebase   *string `json:"codebase"`
	Branch     *string `json:"branch"`
	Revision   *string `json:"revision"`
	Repository *string `json:"repository"`
	Patch      *Patch  `json:"patch"`
}

// Buildset is the set of build requests a build belongs to.
type Buildset struct {
	BSID         *int64        `json:"bsid"`
	Reason       *string       `json:"reason"`
	Sourcestamps []SourceStamp `json:"sourcestamps"`
}

// Change is one change (commit) in a build.
type Change struct {
	Revision *string `json:"revision"`
	Revlink  *string `json:"revlink"`
	Author   *string `json:"author"`
	Comments *string `json:"comments"`
}

// Build is Buildbot's build dict (the fields most formatters read). Properties map a name to
// [value, source].
type Build struct {
	BuildID        *int64                       `json:"buildid"`
	Number         *int64                       `json:"number"`
	BuilderID      *int64                       `json:"builderid"`
	BuildRequestID *int64                       `json:"buildrequestid"`
	Complete       bool                         `json:"complete"`
	Results        *int64                       `json:"results"`
	StateString    string                       `json:"state_string"`
	URL            string                       `json:"url"`
	Properties     map[string][]json.RawMessage `json:"properties"`
	Builder        *Builder                     `json:"builder"`
	Buildset       *Buildset                    `json:"buildset"`
	Steps          []Step                       `json:"steps"`
}

// Property returns property name's value as Python's str() shows it (a string as it is; true,
// false and null as True, False and None; numbers and lists as JSON), and whether there is
// one.
func (b *Build) Property(name string) (string, bool) {
	p, ok := b.Properties[name]
	if !ok || len(p) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(p[0], &s) == nil {
		return s, true
	}
	switch string(p[0]) {
	case "true":
		return "True", true
	case "false":
		return "False", true
	case "null":
		return "None", true
	}
	return string(p[0]), true
}

// Lines returns a log's lines (Rust's str::lines: split at newlines, a trailing newline ends
// the last line), without the one-letter stream prefix (h, o, e) when prefixed is true.
func (c *LogContent) Lines(prefixed bool) []string {
	text := c.Content
	if text == "" {
		return nil
	}
	text = strings.TrimSuffix(text, "\n")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if prefixed && len(l) > 0 && (l[0] == 'h' || l[0] == 'o' || l[0] == 'e') {
			l = l[1:]
		}
		lines[i] = l
	}
	return lines
}

var resultNames = []string{"success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"}

// ResultName is Buildbot's name of a result code (a build's or a step's Results): "failure", …;
// "not finished" for nil. The request's ResultName already says it for the build.
func ResultName(code *int64) string {
	if code == nil {
		return "not finished"
	}
	if *code >= 0 && *code < int64(len(resultNames)) {
		return resultNames[*code]
	}
	return fmt.Sprintf("unknown result %d", *code)
}

// FailedSteps returns the build's steps whose result is FAILURE (2) or EXCEPTION (4).
func (b *Build) FailedSteps() []Step {
	var out []Step
	for _, s := range b.Steps {
		if s.Results != nil && (*s.Results == 2 || *s.Results == 4) {
			out = append(out, s)
		}
	}
	return out
}

// Tail returns the last n lines of a log's text, when the reporter attached it (want_logs_content),
// a stdio log's lines without their stream prefix; nil otherwise.
func (l *Log) Tail(n int) []string {
	if l.Content == nil {
		return nil
	}
	lines := l.Content.Lines(l.Type == "s")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// MessageArgs are the messageFormatter hook's arguments: the build, and the rest
// (MessageHead, whose fields are promoted: a.Name, a.ResultsText, …).
type MessageArgs struct {
	MessageHead
	Build Build `json:"build"`
}

// MessageHead is every messageFormatter argument but the build. A formatter that takes a
// *MessageHead (or a struct of its own without a build field) reads no build, and the SDK
// skips decoding it: most of the request, and most of a warm call's time.
type MessageHead struct {
	Mode        []string `json:"mode"`
	Name        string   `json:"name"`
	Results     *int64   `json:"results"`
	ResultsText string   `json:"results_text"`
	Reporter    Reporter `json:"reporter"`
	Master      Master   `json:"master"`
	BuildURL    string   `json:"build_url"`
	Users       []string `json:"users"`
	Changes     []Change `json:"changes"`
	Logs        []Log    `json:"logs"`
	PrevBuild   *Build   `json:"prev_build"`
	// What Buildbot's template context has, computed by the host (empty from hosts that
	// predate them): StatusDetected ("new failure", "passing build", …), Summary ("BUILD
	// FAILED: …"), ResultName ("failure"), PreviousResults (prev_build's code), Projects,
	// SourceStamps (one "Build Source Stamp: …" line each), IsBuildset, WorkerName and
	// BuildbotURL.
	StatusDetected  string `json:"status_detected"`
	Summary         string `json:"summary"`
	ResultName      string `json:"result_name"`
	PreviousResults *int64 `json:"previous_results"`
	Projects        string `json:"projects"`
	SourceStamps    string `json:"sourcestamps"`
	IsBuildset      bool   `json:"is_buildset"`
	WorkerName      string `json:"workername"`
	BuildbotURL     string `json:"buildbot_url"`
	// Raw is the whole request, for fields this package does not name. It is valid during
	// the call (a warm instance reuses its bytes for the next request).
	Raw json.RawMessage `json:"-"`
}

// Message is the messageFormatter result. Body is a string for "plain" and "html", any JSON
// value for "json".
type Message struct {
	Body    any    `json:"body"`
	Type    string `json:"type"`
	Subject string `json:"subject,omitempty"`
}

// Plain is a plain-text message.
func Plain(body string) *Message { return &Message{Body: body, Type: "plain"} }

// HTML is an HTML message.
func HTML(body string) *Message { return &Message{Body: body, Type: "html"} }

// HTMLEscape escapes &, <, >, " and ' for HTML text and attribute values.
func HTMLEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&#x27;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TitleCase is Python's str.title(): a letter after a non-letter upper-cased, others
// lower-cased ("not finished" -> "Not Finished").
func TitleCase(s string) string {
	out := []rune(s)
	inWord := false
	for i, r := range out {
		if unicode.IsLetter(r) {
			if inWord {
				out[i] = unicode.ToLower(r)
			} else {
				out[i] = unicode.ToTitle(r)
			}
			inWord = true
		} else {
			inWord = false
		}
	}
	return string(out)
}

// inWarmCall gives the request of a warm call (warm.go) and true during one; exitWarm ends
// that call with a status. Outside a warm call, the request is stdin and the end os.Exit.
var (
	inWarmCall = func() ([]byte, bool) { return nil, false }
	exitWarm   = os.Exit
)

// exit ends the call with status code: os.Exit in a command, the end of a warm call otherwise.
func exit(code int) {
	if _, warm := inWarmCall(); warm {
		exitWarm(code)
	}
	os.Exit(code)
}

// readRequest reads the request: a warm call's buffer, or stdin to its end.
func readRequest() ([]byte, error) {
	if raw, warm := inWarmCall(); warm {
		return raw, nil
	}
	return io.ReadAll(os.Stdin)
}

// fail writes the reason on stderr and ends the call with status 1.
func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	exit(1)
}

// MessageFormatter runs f as the messageFormatter hook: reads the request, decodes it into an
// A, calls f, writes the result (null for a nil message), and exits (in a warm call, ends the
// call; see warm.go). A is MessageArgs, MessageHead (all but the build), or a struct of your
// own with the fields you read (their json tags name the request's members): without a build
// field, the SDK skips decoding the build, most of the request, and a call is several times
// faster.
func MessageFormatter[A any](f func(*A) (*Message, error)) {
	raw, err := readRequest()
	if err != nil {
		fail("cannot read the request: %v", err)
	}
	checkHook(raw, "messageFormatter")
	var args A
	if err := decodeArgs(raw, &args); err != nil {
		fail("cannot decode the request: %v", err)
	}
	switch a := any(&args).(type) {
	case *MessageArgs:
		a.Raw = raw
	case *MessageHead:
		a.Raw = raw
	}
	msg, err := f(&args)
	if err != nil {
		fail("%v", err)
	}
	out, err := json.Marshal(msg)
	if err != nil {
		fail("cannot encode the result: %v", err)
	}
	os.Stdout.Write(append(out, '\n'))
	exit(0)
}

// checkHook fails the call unless raw is an ABI 1 request for hook. tidings writes abi and
// hook first, so the usual request is told by its first bytes; anything else is decoded.
func checkHook(raw []byte, hook string) {
	if bytes.HasPrefix(raw, []byte(`{"abi":1,"hook":"`+hook+`",`)) {
		return
	}
	var head struct {
		Abi  int    `json:"abi"`
		Hook string `json:"hook"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		fail("the request is not JSON: %v", err)
	}
	if head.Abi != 1 || head.Hook != hook {
		fail("this formatter serves %s (ABI 1), not %q (ABI %d)", hook, head.Hook, head.Abi)
	}
}

// decodeArgs decodes the request into args: without its build member when args cannot hold
// one (see withoutBuild), else all of it.
func decodeArgs(raw []byte, args any) error {
	if head := withoutBuild(raw, args); head != nil && json.Unmarshal(head, args) == nil {
		return nil
	}
	return json.Unmarshal(raw, args)
}

// withoutBuild returns the request without its build member, closed after the member before
// it, when args is a struct with no field for build and the request is one a host wrote with
// build last; nil otherwise (decode all of it).
//
// `,"build":` can only be structural (a quote inside a JSON string is escaped), and the text
// before it closed by one `}` is JSON only when it is at the top level, so a nested build key
// makes the head fail to decode, and the caller decodes the whole request. Hosts before the
// one that writes build last wrote it right after name: their head lacks buildbot_url and
// arg, which come before build now.
func withoutBuild(raw []byte, args any) []byte {
	if readsBuild(reflect.TypeOf(args)) {
		return nil
	}
	at := bytes.Index(raw, []byte(`,"build":`))
	if at < 0 {
		return nil
	}
	head := raw[:at]
	if !bytes.Contains(head, []byte(`"buildbot_url":`)) && !bytes.Contains(head, []byte(`"arg":`)) {
		return nil
	}
	out := make([]byte, at+1)
	copy(out, head)
	out[at] = '}'
	return out
}

var readsBuildOf sync.Map // reflect.Type -> bool

// readsBuild reports whether decoding into t (a pointer) may read a top-level build: true
// unless t points to a struct, decoded by encoding/json's rules, with no field that a build
// key would fill (encoding/json matches keys to names without regard to case, and looks into
// embedded structs).
func readsBuild(t reflect.Type) bool {
	if v, ok := readsBuildOf.Load(t); ok {
		return v.(bool)
	}
	reads := structReadsBuild(t, 0)
	readsBuildOf.Store(t, reads)
	return reads
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func structReadsBuild(t reflect.Type, depth int) bool {
	if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) {
		return true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) {
			return true
		}
	}
	if t.Kind() != reflect.Struct || depth > 8 {
		return true
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if structReadsBuild(f.Type, depth+1) {
				return true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, "build") {
			return true
		}
	}
	return false
}
