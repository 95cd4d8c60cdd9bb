#!/usr/bin/env bash
# memcheck: runs every C unit test and every fuzz-corpus replay binary under
# valgrind; fails on any memory error or definite leak. (The brief: the test
# suite is Valgrind clean, every _create has its _destroy.)
# usage: memcheck.sh BUILD_DIR SRC_ROOT
set -uo pipefail
BUILD=$1 SRC=$2
command -v valgrind >/dev/null || { echo "1..0 # SKIP valgrind not installed"; exit 77; }
# valgrind cannot run sanitizer builds
if grep -q "fsanitize" "$BUILD/build.ninja" 2>/dev/null; then
  echo "1..0 # SKIP sanitizer build"; exit 77
fi
fail=0 n=0
run() {
  local name=$1; shift
  n=$((n + 1))
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      "$@" >"$BUILD/meson-logs/memcheck-$name.log" 2>&1; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name (see meson-logs/memcheck-$name.log)"
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|.*definitely lost|.*at 0x|.*by 0x)" \
      "$BUILD/meson-logs/memcheck-$name.log" | head -12 | sed 's/^/# /'
    fail=1
  fi
}
# Unit tests run from the source root with no arguments: each defaults to
# the paths it needs relative to it.
cd "$SRC" || exit 1
for t in "$BUILD"/tests/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  run "$(basename "$t")" "$t"
done
for r in "$BUILD"/tests/replay_*; do
  [ -f "$r" ] && [ -x "$r" ] || continue
  name=${r##*/replay_}
  run "replay_$name" "$r" "$SRC/tests/fuzz/corpus/$name"
done
echo "1..$n"
exit $fail
