package tidings

import (
	"strings"
	"testing"
)

func TestTitleCase(t *testing.T) {
	for in, want := range map[string]string{
		"failure": "Failure", "not finished": "Not Finished", "unknown result 9": "Unknown Result 9",
		"it's": "It'S",
	} {
		if got := TitleCase(in); got != want {
			t.Errorf("TitleCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProperty(t *testing.T) {
	var b Build
	if err := jsonUnmarshal(`{"properties": {"branch": ["main", "src"], "n": [3, "x"]}}`, &b); err != nil {
		t.Fatal(err)
	}
	if v, ok := b.Property("branch"); !ok || v != "main" {
		t.Errorf("branch = %q %v", v, ok)
	}
	if v, ok := b.Property("n"); !ok || v != "3" {
		t.Errorf("n = %q %v", v, ok)
	}
	if _, ok := b.Property("nope"); ok {
		t.Error("nope exists")
	}
}

func TestTemplateContextFields(t *testing.T) {
	var a MessageArgs
	req := `{"build": {}, "status_detected": "new failure", "summary": "BUILD FAILED: failed test",
		"result_name": "failure", "previous_results": 0, "projects": "proj",
		"sourcestamps": "Build Source Stamp: [branch main] abc\n", "is_buildset": true,
		"workername": "w1", "buildbot_url": "http://ci/"}`
	if err := jsonUnmarshal(req, &a); err != nil {
		t.Fatal(err)
	}
	if a.StatusDetected != "new failure" || a.Summary != "BUILD FAILED: failed test" ||
		a.ResultName != "failure" || a.PreviousResults == nil || *a.PreviousResults != 0 ||
		a.Projects != "proj" || a.SourceStamps != "Build Source Stamp: [branch main] abc\n" ||
		!a.IsBuildset || a.WorkerName != "w1" || a.BuildbotURL != "http://ci/" {
		t.Errorf("decoded %+v", a)
	}
	// A request from a host that predates these fields decodes to their zero values.
	var old MessageArgs
	if err := jsonUnmarshal(`{"build": {}, "results_text": "failure"}`, &old); err != nil {
		t.Fatal(err)
	}
	if old.StatusDetected != "" || old.PreviousResults != nil || old.IsBuildset {
		t.Errorf("decoded %+v", old)
	}
}

func TestHelpers(t *testing.T) {
	two, nine := int64(2), int64(9)
	if ResultName(&two) != "failure" || ResultName(nil) != "not finished" || ResultName(&nine) != "unknown result 9" {
		t.Fatal("ResultName")
	}
	zero, four := int64(0), int64(4)
	b := Build{Steps: []Step{{Name: "a", Results: &zero}, {Name: "b", Results: &two}, {Name: "c", Results: &four}, {Name: "d"}}}
	failed := b.FailedSteps()
	if len(failed) != 2 || failed[0].Name != "b" || failed[1].Name != "c" {
		t.Fatalf("FailedSteps: %v", failed)
	}
	l := Log{Type: "s", Content: &LogContent{Content: "hheader\noone\netwo\nothree\n"}}
	if got := strings.Join(l.Tail(2), "|"); got != "two|three" {
		t.Fatalf("Tail: %q", got)
	}
	if (&Log{}).Tail(3) != nil {
		t.Fatal("Tail without content")
	}
}

// Requests as a host writes them now (build last), as older hosts wrote them (build after
// name), and with a nested build key before the real one.
const (
	newRequest    = `{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","results":2,"results_text":"failure","buildbot_url":"u","build":{"number":3,"results":2}}`
	oldRequest    = `{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","build":{"number":3,"results":2},"results":2,"results_text":"failure","buildbot_url":"u"}`
	nestedRequest = `{"abi":1,"hook":"messageFormatter","buildbot_url":"u","changes":[{"x":0,"build":1}],"results":2,"results_text":"failure","build":{"number":3}}`
)

type onlyText struct {
	ResultsText string `json:"results_text"`
}

type withBuildTag struct {
	N int `json:"build"`
}

type withBuildName struct{ BUILD any }

type embedsHead struct {
	MessageHead
	Extra string `json:"extra"`
}

func TestWithoutBuildOnlyForArgsThatCannotHoldIt(t *testing.T) {
	head := `{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","results":2,"results_text":"failure","buildbot_url":"u"}`
	if got := string(withoutBuild([]byte(newRequest), &onlyText{})); got != head {
		t.Errorf("head: %s", got)
	}
	if withoutBuild([]byte(newRequest), &MessageHead{}) == nil || withoutBuild([]byte(newRequest), &embedsHead{}) == nil {
		t.Error("MessageHead has no build field")
	}
	for _, args := range []any{&MessageArgs{}, &withBuildTag{}, &withBuildName{}, &map[string]any{}, new(any)} {
		if withoutBuild([]byte(newRequest), args) != nil {
			t.Errorf("%T can hold a build, and must get it", args)
		}
	}
	// An older host's request (build after name) is decoded whole.
	if withoutBuild([]byte(oldRequest), &onlyText{}) != nil {
		t.Error("an old host's request cut")
	}
}

func TestDecodeArgsFallsBackToTheWholeRequest(t *testing.T) {
	for _, req := range []string{newRequest, oldRequest, nestedRequest} {
		var a onlyText
		if err := decodeArgs([]byte(req), &a); err != nil || a.ResultsText != "failure" {
			t.Errorf("%s: %v %+v", req, err, a)
		}
		var full MessageArgs
		if err := decodeArgs([]byte(req), &full); err != nil || full.Build.Number == nil || *full.Build.Number != 3 || full.ResultsText != "failure" {
			t.Errorf("%s: %v %+v", req, err, full)
		}
	}
	// The head of a request with a nested build key before the real one is not JSON.
	if h := withoutBuild([]byte(nestedRequest), &onlyText{}); h == nil || jsonUnmarshal(string(h), &onlyText{}) == nil {
		t.Errorf("nested: %s", h)
	}
}
