// Fails on purpose: tests/guests.rs checks that a warm call that returns an error (status 1,
// the error on stderr), calls os.Exit or panics ends that call and its instance, and that the
// next call, by a new instance, is answered.
package main

import (
	"errors"
	"fmt"
	"os"

	"tidings"
)

type args struct {
	Results     *int64 `json:"results"`
	ResultsText string `json:"results_text"`
}

// calls counts the calls answered by this instance: the answer says it, so a reused instance
// shows.
var calls int

func main() {
	tidings.MessageFormatter(func(a *args) (*tidings.Message, error) {
		calls++
		switch {
		case a.Results == nil:
			os.Exit(3)
		case *a.Results == 2:
			return nil, errors.New("BuildFailed: the build failed")
		case *a.Results == 4:
			panic("an exception, and a panic")
		}
		return tidings.Plain(fmt.Sprintf("%s (call %d)", a.ResultsText, calls)), nil
	})
}
