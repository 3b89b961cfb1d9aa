// short, in Go: `STATUS: <Result>` (plain), like formatters/short; it passes the same cases.
// Build: guest-sdk/build.sh go
//
// It takes a *tidings.MessageHead, every argument but the build (which it does not read), so
// the SDK skips decoding the build: most of the request, and most of a warm call's time.
package main

import "tidings"

func main() {
	tidings.MessageFormatter(func(a *tidings.MessageHead) (*tidings.Message, error) {
		return tidings.Plain("STATUS: " + tidings.TitleCase(a.ResultsText)), nil
	})
}
