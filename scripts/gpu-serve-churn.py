#!/usr/bin/env python3
"""Requests arriving together at a running `coil serve`, some of whose clients hang up mid-stream,
with bad requests among them: each bad request gets its 400 alone, the server lets go of every
request's cache once they have ended, and each request that was answered gets what it gets when
sent again alone (a hung-up one: a prefix of it).

"What it gets alone" is exact where a step's products round the same whatever its rows (the CPU;
the GPU's fixtures in GpuEngineTest). On the GPU a step of many rows takes cuBLAS's products, whose
rounding moves with the rows, so a request's logits move by rounding with the batch beside it: there
the tokens must be the same until a greedy near tie (the two best within TOLERANCE) or a sampled
draw goes the other way, with the chosen tokens' logprobs within TOLERANCE until then. A request
sent alone twice gets the same tokens both times.

    python3 scripts/gpu-serve-churn.py PORT [REQUESTS] [VOCAB] [CONTEXT]

Prompts are token ids (a model without a tokenizer takes them too); tokens are compared as ids
(`return_tokens_as_token_ids`). Only the standard library; exits 1 on a difference.
"""
import http.client
import json
import random
import re
import sys
import threading
import time

port = int(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 48
vocab = int(sys.argv[3]) if len(sys.argv) > 3 else 40000
context = int(sys.argv[4]) if len(sys.argv) > 4 else 4096  # the model's context window: prompt + 40 tokens fit
rng = random.Random(2026)
TOLERANCE = 0.05


def body_of(index):
    """A request: greedy or seeded sampled, streamed or not, logprobs, stop ids, min_tokens, a bias, penalties."""
    body = {"prompt": [rng.randrange(1, vocab) for _ in range(rng.randrange(2, min(300, context - 40)))],
            "max_tokens": rng.randrange(1, 40), "logprobs": rng.choice([0, 0, 2]),
            "return_tokens_as_token_ids": True, "temperature": 0}
    if rng.random() < 0.4:
        body.update(temperature=0.9, top_p=rng.choice([0.9, 1.0]), seed=index)
    if rng.random() < 0.3:
        body["stop_token_ids"] = [rng.randrange(1, vocab)]
    if rng.random() < 0.2:
        body["min_tokens"] = rng.randrange(0, body["max_tokens"] + 1)
    if rng.random() < 0.2:
        body["logit_bias"] = {str(rng.randrange(1, vocab)): 5}
    if rng.random() < 0.25:  # penalties: a draw that depends on the tokens before
        body.update(repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.2)
    if rng.random() < 0.5:
        body["stream"] = True
    return body


def bad_body(index):
    """A request that must fail alone with a 400."""
    return rng.choice([{"prompt": [1, 2, vocab * 1000], "max_tokens": 4},
                       {"prompt": [1, 2, 3], "max_tokens": -1},
                       {"prompt": [1, 2, 3], "temperature": -2},
                       {"prompt": [], "max_tokens": 3},
                       {"prompt": [1, 2, 3], "logprobs": 99}])


def post(body, hang_up_after=None):
    """(status, token ids, finish reason or error, chosen logprobs, top logprobs) of one request; with
    hang_up_after, the client closes the connection once it has read that many streamed chunks."""
    connection = http.client.HTTPConnection("localhost", port, timeout=120)
    connection.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        answer = json.loads(response.read())
        connection.close()
        return response.status, [], answer.get("error", {}).get("type"), [], []
    tokens, logprobs, tops, finish, chunks = [], [], [], None, 0
    if body.get("stream"):
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                finish = "error: " + chunk["error"].get("message", "")
                break
            for choice in chunk.get("choices", []):
                if choice.get("logprobs"):
                    tokens += choice["logprobs"]["tokens"]
                    logprobs += choice["logprobs"]["token_logprobs"]
                    tops += choice["logprobs"]["top_logprobs"] or []
                finish = choice.get("finish_reason") or finish
            chunks += 1
            if hang_up_after is not None and chunks >= hang_up_after:
                connection.sock.shutdown(2)
                connection.close()
                return 200, tokens, "hung up", logprobs, tops
    else:
        choice = json.loads(response.read())["choices"][0]
        tokens, finish = choice["logprobs"]["tokens"], choice["finish_reason"]
        logprobs, tops = choice["logprobs"]["token_logprobs"], choice["logprobs"]["top_logprobs"] or []
    connection.close()
    return 200, tokens, finish, logprobs, tops


def compare(body, together, alone):
    """None where `together` (tokens, finish, logprobs) is what the request gets alone as the module's
    text says, else the difference; and the position where their tokens part (None: they do not)."""
    tokens, finish, logprobs = together
    alone_tokens, alone_finish, alone_logprobs, alone_tops = alone
    part = next((i for i, (a, b) in enumerate(zip(tokens, alone_tokens)) if a != b), None)
    agreed = len(tokens) if part is None else part
    for i in range(agreed):
        if abs(logprobs[i] - alone_logprobs[i]) > TOLERANCE:
            return f"token {i}: logprob {logprobs[i]:.4f} together, {alone_logprobs[i]:.4f} alone", part
    if part is None:
        if finish != "hung up" and (tokens != alone_tokens or finish != alone_finish):
            return f"{len(tokens)} tokens ({finish}) together, {len(alone_tokens)} ({alone_finish}) alone", part
        if len(tokens) > len(alone_tokens):
            return f"{len(tokens)} tokens together, {len(alone_tokens)} alone", part
        return None, part
    if body.get("temperature", 0) > 0 or body.get("logit_bias") or body.get("repetition_penalty"):
        return None, part  # a sampled draw (or one through a bias or penalties) that rounding moved
    best = sorted(alone_tops[part].values(), reverse=True)
    if len(best) >= 2 and best[0] - best[1] <= TOLERANCE and tokens[part] in alone_tops[part]:
        return None, part  # a greedy near tie
    return f"token {part}: {tokens[part]} together, {alone_tokens[part]} alone, alone's best {alone_tops[part]}", part


def metrics():
    connection = http.client.HTTPConnection("localhost", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    values = {}
    for name in ("coil_requests_running", "coil_requests_waiting", "coil_kv_blocks_in_use",
                 "coil_state_slots_in_use"):
        found = re.search(r"^" + name + r"(\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
        values[name] = float(found.group(2)) if found else None
    cancelled = re.search(r'^coil_requests_total\{[^}]*finish_reason="cancelled"[^}]*\} ([0-9.eE+-]+)$', text, re.M)
    values["cancelled"] = float(cancelled.group(1)) if cancelled else 0.0
    return values


requests = []
for index in range(count):
    if rng.random() < 0.1:
        requests.append(("bad", bad_body(index), None))
    else:
        body = body_of(index)
        hang_up = rng.randrange(1, 4) if body.get("stream") and rng.random() < 0.35 else None
        requests.append(("hang up" if hang_up else "answered", body, hang_up))

cancelled_before = metrics()["cancelled"]
results = [None] * len(requests)


def send(index):
    time.sleep(rng.random() * 0.05)  # arrivals spread over 50 ms, while steps run
    kind, body, hang_up = requests[index]
    try:
        results[index] = post(body, hang_up)
    except Exception as error:  # a request's own failure is reported below
        results[index] = (None, [], repr(error))


threads = [threading.Thread(target=send, args=(index,)) for index in range(len(requests))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()

# The engine lets go of every request's cache once they have ended (cached prefixes are not in use).
settled = metrics()
for _ in range(100):
    if all(settled[name] == 0 for name in ("coil_requests_running", "coil_requests_waiting",
                                           "coil_kv_blocks_in_use", "coil_state_slots_in_use")):
        break
    time.sleep(0.1)
    settled = metrics()

failures = []
counts = {"bad": 0, "answered": 0, "hang up": 0}
parted, same, repeated = [], 0, 0
for index, ((kind, body, hang_up), (status, tokens, finish, logprobs, tops)) in enumerate(zip(requests, results)):
    counts[kind] += 1
    if kind == "bad":
        if status != 400 or finish != "invalid_request_error":
            failures.append(f"request {index}: bad request answered {status} {finish}")
        continue
    if status != 200:
        failures.append(f"request {index}: {status} {finish}")
        continue
    alone_body = dict(body, stream=False, logprobs=2)  # the two best at each position, for the near ties
    alone = post(alone_body)[1:]
    if repeated < 5:  # alone again: exactly the same
        repeated += 1
        if post(alone_body)[1:3] != alone[:2]:
            failures.append(f"request {index}: alone twice, two answers")
    difference, part = compare(body, (tokens, finish, logprobs), alone)
    if difference:
        failures.append(f"request {index} ({kind}, temperature {body.get('temperature')}): {difference}")
    elif part is None:
        same += 1
    else:
        parted.append(part)

print(f"{len(requests)} requests at once: {counts['answered']} answered, {counts['hang up']} whose client hung up "
      f"mid-stream, {counts['bad']} bad; cancelled by the server {settled['cancelled'] - cancelled_before:.0f}")
print("after them: " + ", ".join(f"{name} {value:.0f}" for name, value in settled.items() if name != "cancelled"))
print(f"against each sent again alone: {same} the same tokens, {len(parted)} parting at a greedy near tie or a "
      f"sampled draw (after {sorted(parted)} tokens), {len(failures)} differing otherwise; "
      f"each bad one a 400 invalid_request_error")
for failure in failures[:10]:
    print("  " + failure)
if any(settled[name] != 0 for name in settled if name != "cancelled"):
    failures.append("cache or requests left in use")
sys.exit(1 if failures else 0)
