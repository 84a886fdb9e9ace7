"""Over HTTP: does a request get the same answer alone as among others?

    python3 gpu-serve-invariance.py PORT

Sends 12 completion requests (token-id prompts of 5 to 380 tokens, greedy and seeded sampled, 5
logprobs each) one at a time, then all of them at once beside 24 other requests, and compares each
request's tokens and logprobs as the server wrote them (JSON floats, exactly). Prints how many of the
12 came back identical and the largest logprob difference; exits 1 when any differs.
"""
import json
import random
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

port = int(sys.argv[1])


def complete(body):
    request = urllib.request.Request(f"http://localhost:{port}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        choice = json.load(response)["choices"][0]
    logprobs = choice["logprobs"]
    return logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]


rng = random.Random(11)
bodies = []
for i in range(12):
    body = {"prompt": [rng.randrange(1, 40000) for _ in range(5 + 33 * i)], "max_tokens": 16, "logprobs": 5}
    body.update({"temperature": 0.9, "top_p": 0.9, "seed": 100 + i} if i % 3 == 2 else {"temperature": 0})
    bodies.append(body)
others = [{"prompt": [rng.randrange(1, 40000) for _ in range(rng.randrange(4, 600))],
           "max_tokens": rng.randrange(4, 40), "logprobs": 1, "temperature": 0} for _ in range(24)]

alone = [complete(body) for body in bodies]
with ThreadPoolExecutor(max_workers=36) as pool:
    mixed = others[:12] + bodies + others[12:]
    results = list(pool.map(complete, mixed))
together = results[12:24]

same = sum(a == t for a, t in zip(alone, together))
largest = max(abs(x - y) for a, t in zip(alone, together) for x, y in zip(a[1], t[1]))
print(f"{same} of {len(bodies)} requests identical alone and among 36 (tokens and logprobs as written); "
      f"largest |d logprob| of a chosen token {largest:.3g}")
sys.exit(0 if same == len(bodies) else 1)
