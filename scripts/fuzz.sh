#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for N seconds each, on a copy of its corpus, with
# its dictionary (tests/fuzz/NAME.dict) when it has one.
set -euo pipefail
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  work=$(mktemp -d)
  cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  dict=()
  [ -f "$root/tests/fuzz/$name.dict" ] && dict=(-dict="$root/tests/fuzz/$name.dict")
  echo "fuzz_$name: ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$seconds" -max_len=4096 "${dict[@]}" \
       -artifact_prefix="$work/" "$work" 2>"$work.log"; then
    echo "fuzz_$name found a problem:"; tail -40 "$work.log"; status=1
  else
    grep -E "^Done|stat::number_of_executed_units" "$work.log" | tail -1 || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status
