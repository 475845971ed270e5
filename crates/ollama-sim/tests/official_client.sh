#!/usr/bin/env bash
# Runs the official `ollama` Python client (tests/official_client.py) against a freshly
# started ollama-sim on a free loopback port, and stops the sim whatever happens.
#
# Usage: crates/ollama-sim/tests/official_client.sh [path/to/ollama-sim]
# Default binary: target/release/ollama-sim, else target/debug/ollama-sim (built if
# neither exists). Needs python3 with the `ollama` package (pip install ollama).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${1:-}
if [[ -z "$bin" ]]; then
    if [[ -x "$root/target/release/ollama-sim" ]]; then
        bin=$root/target/release/ollama-sim
    else
        (cd "$root" && cargo build -q -p ollama-sim)
        bin=$root/target/debug/ollama-sim
    fi
fi

if ! python3 -c 'import ollama' 2>/dev/null; then
    echo "official_client.sh: the Python package 'ollama' is missing (pip install ollama)" >&2
    exit 1
fi

# A free port: bind port 0, read it back, release it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp -t ollama-sim-log.XXXXXX)
# Fast but not instant models, so streams have real pacing.
"$bin" --listen "127.0.0.1:$port" --time-scale 0.05 >"$log" 2>&1 &
sim_pid=$!
cleanup() {
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT INT TERM

# Wait (bounded) until the sim answers.
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        echo "official_client.sh: ollama-sim exited early:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.05
done

OLLAMA_HOST="http://127.0.0.1:$port" python3 "$here/official_client.py"
