#!/usr/bin/env bash
# Builds the `short` formatter in one guest language, installing that language's toolchain
# first if it is missing (idempotent; from the project's registries only):
#
#   guest-sdk/build.sh rust|c       -> <target>/guests/short-<lang>.wasm
#   guest-sdk/build.sh all          -> every language this script knows
#
# <target> is $CARGO_TARGET_DIR, else ./target. For C it also builds the SDK's own test program,
# <target>/guests/tidings-h-test.wasm (run it with `tidings run`).
# Languages still to come (see issue 5): zig assemblyscript go python javascript.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/guests"
mkdir -p "$OUT"

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
      apt-get install -y -q clang lld wasi-libc libclang-rt-14-dev-wasm32 >&2
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

not_yet() {
  echo "guest-sdk/build.sh: $1 is not supported yet (see issue 5); supported: rust c" >&2
  return 2
}

case "${1:-}" in
  rust) build_rust ;;
  c) build_c ;;
  zig|assemblyscript|go|python|javascript) not_yet "$1" ;;
  all)
    failed=()
    for lang in rust c; do
      "build_$lang" || failed+=("$lang")
    done
    if ((${#failed[@]})); then
      echo "guest-sdk/build.sh: FAILED: ${failed[*]}" >&2
      exit 1
    fi
    echo "guest-sdk/build.sh: not yet supported, so not built: zig assemblyscript go python javascript" >&2
    ;;
  *)
    echo "usage: guest-sdk/build.sh rust|c|zig|assemblyscript|go|python|javascript|all" >&2
    exit 2
    ;;
esac
