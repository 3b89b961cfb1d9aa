// short, in Go: `STATUS: <Result>` (plain), like formatters/short; it passes the same cases.
// Build: guest-sdk/build.sh go
package main

import "tidings"

func main() {
	tidings.MessageFormatter(func(a *tidings.MessageArgs) (*tidings.Message, error) {
		return tidings.Plain("STATUS: " + tidings.TitleCase(a.ResultsText)), nil
	})
}
