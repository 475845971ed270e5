-- wrk script: non-streamed POST /api/generate, the load a benchmark puts on the sim.
-- Usage: wrk -t2 -c64 -d10s -s crates/ollama-sim/bench/post.lua http://127.0.0.1:PORT/api/generate
-- wrk prints "Non-2xx or 3xx responses: N" when any answer was not a success; a run
-- with that line does not count as a capacity figure.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"llama3.2","prompt":"Why is the sky blue?","stream":false}'
