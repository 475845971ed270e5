#!/usr/bin/env bash
# Measures ollama-sim's capacity for non-streamed POST /api/generate with instant models,
# side by side with the neutral nginx target (../../../../shared/bench/neutral-target.sh,
# or $NEUTRAL_TARGET), alternating rounds so both see the same machine load.
#
# Usage: crates/ollama-sim/bench/capacity.sh [ROUNDS] [DURATION] [CONNECTIONS]
#   defaults: 3 rounds, 10s, 64 connections; wrk -t2.
# Needs: wrk and nginx (Debian: apt-get install -y wrk nginx-light), and a release build
# (cargo build --release -p ollama-sim).
set -euo pipefail

rounds=${1:-3}
duration=${2:-10s}
conns=${3:-64}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${OLLAMA_SIM_BIN:-$root/target/release/ollama-sim}
neutral=${NEUTRAL_TARGET:-/work/shared/bench/neutral-target.sh}
lua=$here/post.lua
sim_port=${SIM_PORT:-18434}
nginx_port=${NGINX_PORT:-18435}

"$bin" --instant --listen "127.0.0.1:$sim_port" 2>/dev/null &
sim_pid=$!
nginx_pid=$("$neutral" start "$nginx_port")
cleanup() {
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    "$neutral" stop "$nginx_pid" || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$sim_port") 2>/dev/null && break
    sleep 0.05
done

# One wrk run; prints requests/s, fails on any non-2xx answer or socket error.
run() {
    local url=$1 out
    out=$(wrk -t2 -c"$conns" -d"$duration" -s "$lua" "$url")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "bench: errors against $url:" >&2
        echo "$out" >&2
        return 1
    fi
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm both (and load the sim's model) before measuring.
wrk -t1 -c4 -d1s -s "$lua" "http://127.0.0.1:$sim_port/api/generate" >/dev/null
wrk -t1 -c4 -d1s -s "$lua" "http://127.0.0.1:$nginx_port/api/generate" >/dev/null

sim_runs=()
nginx_runs=()
for r in $(seq 1 "$rounds"); do
    s=$(run "http://127.0.0.1:$sim_port/api/generate")
    n=$(run "http://127.0.0.1:$nginx_port/api/generate")
    echo "round $r: ollama-sim $s req/s, nginx $n req/s"
    sim_runs+=("$s")
    nginx_runs+=("$n")
done
sim_med=$(printf '%s\n' "${sim_runs[@]}" | median)
nginx_med=$(printf '%s\n' "${nginx_runs[@]}" | median)
ratio=$(awk -v a="$sim_med" -v b="$nginx_med" 'BEGIN {printf "%.2f", a / b}')
echo "median: ollama-sim $sim_med req/s, nginx $nginx_med req/s, ratio sim/nginx $ratio"
