#!/usr/bin/env python3
"""Conformance check: the official `ollama` Python package against ollama-sim.

The sim's URL comes from OLLAMA_HOST (as the official client reads it). The sim must
serve its default models: "llama3.2:latest" (chat) and "all-minilm:latest" (embedding).
Exits non-zero on the first failed assertion. Needs: pip install ollama
"""

import math
import os
import sys

import ollama

CHAT = "llama3.2"
EMBED = "all-minilm"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok   {what}")


def main() -> int:
    host = os.environ.get("OLLAMA_HOST")
    check(bool(host), "OLLAMA_HOST is set")
    client = ollama.Client(host=host, timeout=60)

    # list
    models = client.list().models
    names = [m.model for m in models]
    check("llama3.2:latest" in names and "all-minilm:latest" in names, f"list: {names}")
    llama = next(m for m in models if m.model == "llama3.2:latest")
    check(llama.size > 0 and llama.digest and llama.details.family == "llama", "list: details")

    # show
    info = client.show(CHAT)
    check(info.modelinfo is not None and "general.architecture" in info.modelinfo, "show: model_info")
    check("completion" in (info.capabilities or []), f"show: capabilities {info.capabilities}")
    check(info.details.parameter_size == "3.2B", "show: details")

    # generate, not streamed (the Python default is stream=False)
    r = client.generate(model=CHAT, prompt="Why is the sky blue?")
    check(r.done and r.done_reason == "stop" and len(r.response) > 0, "generate: whole answer")
    for field in ("total_duration", "load_duration", "prompt_eval_count",
                  "prompt_eval_duration", "eval_count", "eval_duration"):
        check((getattr(r, field) or 0) > 0, f"generate: {field} > 0")
    check(r.context and len(r.context) == r.prompt_eval_count + r.eval_count, "generate: context")

    # generate, streamed
    parts = list(client.generate(model=CHAT, prompt="Why is the sky blue?", stream=True))
    check(len(parts) >= 2 and parts[-1].done and not any(p.done for p in parts[:-1]),
          f"generate stream: {len(parts)} chunks, done only on the last")
    check("".join(p.response for p in parts) == r.response, "generate stream: same text as whole")
    check(parts[-1].eval_count == len(parts) - 1, "generate stream: eval_count = token chunks")

    # chat, both ways
    msgs = [{"role": "user", "content": "Hello!"}]
    c = client.chat(model=CHAT, messages=msgs)
    check(c.message.role == "assistant" and c.message.content and c.done, "chat: whole answer")
    check((c.eval_count or 0) > 0 and (c.total_duration or 0) > 0, "chat: metrics")
    chunks = list(client.chat(model=CHAT, messages=msgs, stream=True))
    check(chunks[-1].done and chunks[-1].done_reason == "stop", "chat stream: final chunk")
    check("".join(ch.message.content for ch in chunks) == c.message.content, "chat stream: same text")

    # options: num_predict caps the answer
    capped = client.generate(model=CHAT, prompt="x", options={"num_predict": 3})
    check(capped.eval_count == 3 and capped.done_reason == "length", "generate: num_predict -> length")

    # embed and the legacy embeddings
    e = client.embed(model=EMBED, input=["first", "second"])
    check(len(e.embeddings) == 2, "embed: one vector per input")
    for v in e.embeddings:
        check(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-6, "embed: unit length")
    legacy = client.embeddings(model=EMBED, prompt="first")
    check(len(legacy.embedding) == len(e.embeddings[0]), "embeddings: same dimension")

    # ps shows what was loaded
    running = [m.model for m in client.ps().models]
    check("llama3.2:latest" in running and "all-minilm:latest" in running, f"ps: {running}")

    # errors surface as ResponseError with the status
    try:
        client.generate(model="no-such-model", prompt="x")
        check(False, "generate: unknown model raises")
    except ollama.ResponseError as err:
        check(err.status_code == 404 and "not found" in err.error, f"generate: 404 ({err})")

    # copy, delete, pull (streamed progress)
    client.copy(CHAT, "llama-copy")
    check("llama-copy:latest" in [m.model for m in client.list().models], "copy: new name listed")
    client.delete("llama-copy")
    check("llama-copy:latest" not in [m.model for m in client.list().models], "delete: gone")
    progress = list(client.pull(CHAT, stream=True))
    check(progress[0].status == "pulling manifest" and progress[-1].status == "success",
          "pull: progress stream")

    print("official ollama client: all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as err:
        print(f"FAIL {err}", file=sys.stderr)
        sys.exit(1)
