#!/bin/sh
# bench/run.sh: `make bench` — moonhub's tensor API (bench/tensor.lua, run
# by the host) against C references (build/bench/blas_ref: OpenBLAS sgemm
# called directly, plain C loops). Runs them interleaved (A B A B), keeps the
# best of each, prints a table with the ratio ours / reference. Prints, never
# asserts: benchmarks are not tests. Then the inference table
# (bench/models.lua): `moonhub bench` on issue 18's preset files, against
# llama-bench when LLAMA_CPP names its bin folder (or the binary).
# Usage: bench/run.sh BUILD_DIR; `make bench LLAMA_CPP=/path/to/llama.cpp/build/bin`
# Env: BENCH_ROUNDS (default 3), BENCH_THREADS (default "1 2"), BENCH_TABLES
# ("tensor models" by default), BENCH_MODEL_ROUNDS (2), LLAMA_CPP;
# bench/models.lua reads more (BENCH_MODELS, BENCH_PP, BENCH_TG, BENCH_REPS).
build=${1:-build}
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-"1 2"}
ref="$build/bench/blas_ref"
out=$(mktemp); trap 'rm -f "$out"' EXIT

[ -x "$ref" ] || { echo "bench: $ref not built (run make bench)"; exit 1; }
[ -x ./moonhub ] || { echo "bench: ./moonhub not built"; exit 1; }

# The host re-execs itself with OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs;
# the reference must use the same OpenBLAS kernels to be a fair peer.
coretype=""
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then coretype=SkylakeX; fi

echo "moonhub bench — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores;" \
     "reference OPENBLAS_CORETYPE=${coretype:-(default)}; best of $rounds interleaved rounds"

tables=${BENCH_TABLES:-"tensor models"}
case " $tables " in *" tensor "*) ;; *) threads="" ;; esac

for t in $threads; do
    r=1
    while [ "$r" -le "$rounds" ]; do
        MOONHUB_THREADS=$t ./moonhub run bench/tensor.lua 2>/dev/null | sed "s/^/ours $t /" >>"$out"
        if [ -n "$coretype" ]; then
            OPENBLAS_CORETYPE=$coretype "$ref" "$t" | sed "s/^/ref $t /" >>"$out"
        else
            "$ref" "$t" | sed "s/^/ref $t /" >>"$out"
        fi
        r=$((r + 1))
    done
done

# rows: impl threads case unit value -> best per (impl, threads, case).
awk '
{
    key = $2 SUBSEP $3
    if (!(key in seen)) { seen[key] = 1; order[++n] = key; unit[key] = $4 }
    if ($1 == "ours") { if ($5 > ours[key]) ours[key] = $5 }
    else if ($5 > ref[key]) ref[key] = $5
}
END {
    printf "\n%-26s %3s %9s %11s %11s %7s %7s\n", "case", "thr", "unit", "moonhub", "reference", "ratio", "target"
    for (i = 1; i <= n; i++) {
        split(order[i], k, SUBSEP)
        c = k[2]; rkey = order[i]
        tgt = (c ~ /^matmul/) ? 0.95 : 0.90
        if (ours[order[i]] == "" || ref[rkey] == "") {
            printf "%-26s %3s %9s %11s %11s %7s %7.2f\n", c, k[1], unit[order[i]], \
                (ours[order[i]] == "" ? "-" : ours[order[i]]), (ref[rkey] == "" ? "-" : ref[rkey]), "-", tgt
            continue
        }
        ratio = ours[order[i]] / ref[rkey]
        printf "%-26s %3s %9s %11.2f %11.2f %7.3f %7.2f%s\n", c, k[1], unit[order[i]], \
            ours[order[i]], ref[rkey], ratio, tgt, (ratio < tgt ? "  below target" : "")
    }
}' "$out"

case " $tables " in
    *" models "*) BENCH_ROUNDS=${BENCH_MODEL_ROUNDS:-2} ./moonhub run bench/models.lua "${LLAMA_CPP:-}" ;;
esac
