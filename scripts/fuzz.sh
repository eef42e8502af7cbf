#!/usr/bin/env bash
# Run the cargo-fuzz targets under fuzz/, one after another (one core, niced), and print the executions of each.
#
#   scripts/fuzz.sh [SECONDS | -runs=N] [--minimise] [TARGET...] [-- LIBFUZZER-ARGS...]
#
# SECONDS (default 60) bounds each target's run; -runs=N runs each target N executions instead. TARGET... picks
# targets (default: all of `cargo fuzz list`); only those are built. Each run reads the committed corpus fuzz/corpus/<target> and writes
# what it finds to fuzz/work/<target> (not committed); --minimise then merges those finds into the committed
# corpus with `cargo fuzz cmin`. A crash is written to fuzz/artifacts/<target>/ (commit it with the fix: the
# replay test crates/s3batch/tests/fuzz_replay.rs runs it in CI); the script goes on with the next target and
# exits 1 at the end.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It builds on the stable toolchain with `-s none`: no
# sanitizer (ASan needs nightly; the project has no unsafe code), libFuzzer's coverage instrumentation only.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
limit=(-max_total_time=60)
minimise=0
targets=()
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        -runs=*) limit=("$1") ;;
        --minimise) minimise=1 ;;
        --) shift; extra=("$@"); break ;;
        *[!0-9]*) targets+=("$1") ;;
        *) limit=(-max_total_time="$1") ;;
    esac
    shift
done
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2; exit 1; }
if [ ${#targets[@]} -gt 0 ]; then
    # Only the targets named: an instrumented build of all of them takes long on a small machine.
    for t in "${targets[@]}"; do nice -n 10 cargo fuzz build -s none "$t" >&2; done
else
    mapfile -t targets < <(cargo fuzz list)
    nice -n 10 cargo fuzz build -s none >&2
fi
failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    log="work/$t.log"
    rc=0
    nice -n 10 cargo fuzz run -s none "$t" "work/$t" "corpus/$t" -- "${limit[@]}" -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || rc=$?
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    secs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -Eo 'in [0-9]+' | grep -Eo '[0-9]+' | tail -1 || true)
    if [ $rc -ne 0 ]; then
        failed=1
        summary+=("$t: CRASH after ${execs:-?} executions (see fuzz/$log and fuzz/artifacts/$t/)")
    else
        summary+=("$t: ${execs:-?} executions in ${secs:-?} s, no crash")
    fi
    if [ $minimise -eq 1 ] && [ $rc -eq 0 ]; then
        cp -n "work/$t"/* "corpus/$t"/ 2>/dev/null || true
        nice -n 10 cargo fuzz cmin -s none "$t" "corpus/$t" >>"$log" 2>&1
        rm -rf "work/$t"
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed
