// html-log-tail, in Go: the HTML mail of formatters/html-log-tail, character for character
// (it passes that formatter's cases). Build status, worker, build URL, reason, source stamps,
// blamelist, recent changes, and the last 80 lines of the last finished step's stdio log
// (stream prefixes removed, HTML-escaped) with a link to the full log. Subject: Buildbot's
// fallback, "Buildbot <result> in <title> on <builder>".
// Build: guest-sdk/build.sh go (builds it beside short-go).
package main

import (
	"fmt"
	"strings"

	"tidings"
)

// tailLines is how many log lines the mail shows.
const tailLines = 80

var esc = tidings.HTMLEscape

func main() {
	tidings.MessageFormatter(func(a *tidings.MessageArgs) (*tidings.Message, error) {
		m := tidings.HTML(body(a))
		m.Subject = fmt.Sprintf("Buildbot %s in %s on %s", a.ResultsText, a.Master.Title, a.Name)
		return m, nil
	})
}

// colour is the colour Buildbot's web UI uses for a result.
func colour(results *int64) string {
	if results == nil {
		return "#ccc"
	}
	switch *results {
	case 0:
		return "#8d4"
	case 1:
		return "#fa3"
	case 2:
		return "#e88"
	case 4:
		return "#c6c"
	case 3, 5, 6:
		return "#ecc"
	}
	return "#ccc"
}

func or(s *string, dflt string) string {
	if s == nil {
		return dflt
	}
	return *s
}

func body(a *tidings.MessageArgs) string {
	b := &a.Build
	var o strings.Builder
	number := ""
	if b.Number != nil {
		number = fmt.Sprintf(" #%d", *b.Number)
	}
	fmt.Fprintf(&o, "<html><body>\n<h2 style=\"background:%s;padding:4px\">Build%s of %s: %s</h2>\n",
		colour(a.Results), number, esc(a.Name), esc(strings.ToUpper(a.ResultsText)))
	o.WriteString("<table>\n")
	row := func(k, v string) {
		fmt.Fprintf(&o, "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", k, v)
	}
	row("Status", esc(b.StateString))
	worker, ok := b.Property("workername")
	if !ok {
		worker = "(unknown)"
	}
	row("Worker", esc(worker))
	url := esc(a.BuildURL)
	row("Build", fmt.Sprintf("<a href=\"%s\">%s</a>", url, url))
	reason, ok := b.Property("reason")
	if !ok {
		reason = "(unknown)"
	}
	row("Reason", esc(reason))
	blame := "(nobody)"
	if len(a.Users) > 0 {
		blame = strings.Join(a.Users, ", ")
	}
	row("Blamelist", esc(blame))
	o.WriteString("</table>\n")

	var stamps []tidings.SourceStamp
	if b.Buildset != nil {
		stamps = b.Buildset.Sourcestamps
	}
	sourceStamps(&o, stamps)
	changes(&o, a.Changes)
	logTail(&o, a)
	o.WriteString("</body></html>\n")
	return o.String()
}

func sourceStamps(o *strings.Builder, stamps []tidings.SourceStamp) {
	o.WriteString("<h3>Source stamps</h3>\n")
	if len(stamps) == 0 {
		o.WriteString("<p>None.</p>\n")
		return
	}
	o.WriteString("<table>\n<tr><th>Codebase</th><th>Branch</th><th>Revision</th><th>Patch</th></tr>\n")
	for _, ss := range stamps {
		patch := "none"
		if ss.Patch != nil {
			patch = fmt.Sprintf("by %s: %s", esc(or(ss.Patch.Author, "(unknown)")), esc(or(ss.Patch.Comment, "")))
		}
		fmt.Fprintf(o, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			esc(or(ss.Codebase, "")), esc(or(ss.Branch, "")), esc(or(ss.Revision, "HEAD")), patch)
	}
	o.WriteString("</table>\n")
}

func changes(o *strings.Builder, cs []tidings.Change) {
	o.WriteString("<h3>Recent changes</h3>\n")
	if len(cs) == 0 {
		o.WriteString("<p>No changes.</p>\n")
		return
	}
	o.WriteString("<table>\n<tr><th>Revision</th><th>Author</th><th>Comments</th></tr>\n")
	for _, c := range cs {
		rev := or(c.Revision, "")
		short := rev
		if len(short) > 12 {
			short = short[:12]
		}
		cell := esc(short)
		if c.Revlink != nil && *c.Revlink != "" {
			cell = fmt.Sprintf("<a href=\"%s\">%s</a>", esc(*c.Revlink), esc(short))
		}
		first := strings.SplitN(strings.ReplaceAll(or(c.Comments, ""), "\r\n", "\n"), "\n", 2)[0]
		fmt.Fprintf(o, "<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n", cell, esc(or(c.Author, "")), esc(first))
	}
	o.WriteString("</table>\n")
}

func logTail(o *strings.Builder, a *tidings.MessageArgs) {
	var step *tidings.Step
	for i := len(a.Build.Steps) - 1; i >= 0; i-- {
		if a.Build.Steps[i].Complete {
			step = &a.Build.Steps[i]
			break
		}
	}
	if step == nil {
		o.WriteString("<p>No step finished.</p>\n")
		return
	}
	var log *tidings.Log
	for i := range step.Logs {
		if step.Logs[i].Name == "stdio" {
			log = &step.Logs[i]
			break
		}
	}
	if log == nil {
		fmt.Fprintf(o, "<p>Step %s has no stdio log.</p>\n", esc(step.Name))
		return
	}
	// Prefer the content the reporter attached in `logs`; fall back to the build's own.
	content := log.Content
	for i := range a.Logs {
		l := &a.Logs[i]
		if l.LogID != nil && log.LogID != nil && *l.LogID == *log.LogID && l.Content != nil {
			content = l.Content
			break
		}
	}
	if content == nil {
		fmt.Fprintf(o, "<p>The log of step %s was not attached.", esc(step.Name))
	} else {
		lines := content.Lines(log.Type == "s")
		from := len(lines) - tailLines
		if from < 0 {
			from = 0
		}
		fmt.Fprintf(o, "<h3>Step %s (stdio), last %d lines</h3>\n<pre>\n", esc(step.Name), len(lines)-from)
		for _, l := range lines[from:] {
			o.WriteString(esc(l))
			o.WriteString("\n")
		}
		o.WriteString("</pre>\n<p>")
	}
	if log.URL != "" {
		fmt.Fprintf(o, " <a href=\"%s\">Full log</a>", esc(log.URL))
	}
	o.WriteString("</p>\n")
}
