//go:build wasip1

package tidings

// ABI v1's warm entry points (guest-sdk/README.md, "Warm instances"). Go runs an exported
// function only in a reactor, built with -buildmode=c-shared (as `tidings build` does): the
// runtime and the package inits start in _initialize, and main.main is not run. Each call of
// tidings_format_v1 runs main.main instead, with the request in place of stdin, so a formatter
// written as a command runs warm unchanged: MessageFormatter reads the request from the buffer
// and, where a command would exit, ends the call with that status; a panic ends it as it ends
// a command, with its stack on stderr and status 2.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"unsafe"
)

// mainMain is the formatter's own main function (main.main).
//
//go:linkname mainMain main.main
func mainMain()

// warmRequest holds the request of the call in progress (nil outside a warm call); its
// backing array is reused from one call to the next.
var warmRequest []byte

// warmCall is true while tidings_format_v1 runs main.main.
var warmCall bool

// exitStatus ends a warm call with a status, where a command would call os.Exit.
type exitStatus int

//go:wasmexport tidings_alloc_v1
func tidingsAllocV1(n int32) int32 {
	if n < 0 {
		return 0
	}
	if cap(warmRequest) < int(n) || cap(warmRequest) == 0 {
		warmRequest = make([]byte, n, max(n, 1))
	}
	warmRequest = warmRequest[:n]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(warmRequest[:cap(warmRequest)]))))
}

//go:wasmexport tidings_format_v1
func tidingsFormatV1(ptr, n int32) (status int32) {
	if n < 0 || int(n) > cap(warmRequest) ||
		uintptr(ptr) != uintptr(unsafe.Pointer(unsafe.SliceData(warmRequest[:cap(warmRequest)]))) {
		println("tidings: tidings_format_v1 called with a buffer tidings_alloc_v1 did not give")
		return 1
	}
	warmRequest = warmRequest[:n]
	warmCall = true
	defer func() {
		warmCall = false
		if r := recover(); r != nil {
			if s, ok := r.(exitStatus); ok {
				status = int32(s)
				return
			}
			// As a command would end, with status 2 and the stack on stderr; the panic and
			// where it was raised come last, where tidings' log of a failed call shows them.
			fmt.Fprintf(os.Stderr, "%s\npanic: %v%s\n", debug.Stack(), r, raisedAt())
			status = 2
		}
	}()
	mainMain()
	return 0
}

// raisedAt says where the panic being recovered was raised: " (file.go:line, in function)",
// the first frame below the runtime's panic; "" when it cannot tell.
func raisedAt() string {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(1, pc)])
	panicking := false
	for {
		f, more := frames.Next()
		if panicking && !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf(" (%s:%d, in %s)", filepath.Base(f.File), f.Line, f.Function)
		}
		if f.Function == "runtime.gopanic" {
			panicking = true
		}
		if !more {
			return ""
		}
	}
}

func init() {
	inWarmCall = func() ([]byte, bool) { return warmRequest, warmCall }
	exitWarm = func(code int) { panic(exitStatus(code)) }
}
