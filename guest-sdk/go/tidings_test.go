package tidings

import "testing"

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
