// short, in Go: `STATUS: <Result>` (plain), like formatters/short; it passes the same cases.
// Build: guest-sdk/build.sh go
//
// Its arguments are a struct with the one member it reads, so the SDK decodes neither the build
// nor the rest of the request's head: most of a warm call's time is encoding/json's.
package main

import "tidings"

type args struct {
	ResultsText string `json:"results_text"`
}

func main() {
	tidings.MessageFormatter(func(a *args) (*tidings.Message, error) {
		return tidings.Plain("STATUS: " + tidings.TitleCase(a.ResultsText)), nil
	})
}
