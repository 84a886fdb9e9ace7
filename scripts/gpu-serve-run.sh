#!/usr/bin/env bash
# Runs on the GPU machine from the checkout root with the folder scripts/gpu-serve-check.sh prepared.
# The HTTP server on the GPU machine: a random 304M GraniteMoeHybrid (bf16, no tokenizer: prompts
# as token ids), `coil serve --devices auto`, then real HTTP requests with curl.
#
#   FOLDER=.gpu-serve bash .gpu-serve/serve.sh [ring|long|experts]
#
# ring (two GPUs): `coil serve --devices cuda:0,cuda:1` with --context-parallel auto and a share of
# 2048 positions per GPU, so that a long prompt is sharded over both cards (paths "ring x2") while
# short ones run batched on cuda:0; its answers are compared with a one-GPU server's.
# long: a fresh one-GPU server's prefill of new long prompts (LONG_LENGTHS, tokens), one at a time.
# experts: the test fixture with routed experts served on the GPU and on the CPU, compared over HTTP
# (EXPERTS_FIXTURE names it: granitemoehybrid_moe, the default, or nemotron_h_moe).
# invariant: `coil serve --batch-invariant` and a default server, each asked 12 requests alone and then
# among 36 at once (invariance.py).
# In both, SERVE_ARGS adds options to every server's command line (e.g. "--ssd-precision tf32").
set -u
tar xJf ${FOLDER:-.gpu-serve}/jre.txz -C /tmp && export PATH=/tmp/jre/bin:$PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() { java ${JAVA_OPTS:-} --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp "${FOLDER:-.gpu-serve}/lib/*" dev.coil.server.Main "$@"; }
# The servers run as children of backgrounded shells: stop the JVMs themselves, so that the next
# mode's servers get their ports.
stop_servers() { pkill -f "dev.coil.server.Main serve" 2>/dev/null; for i in $(seq 1 60); do pgrep -f "dev.coil.server.Main serve" >/dev/null || break; sleep 0.5; done; }
run bench --cache-dir /tmp/g300 --prompt-lengths 4 --decode-tokens 2 --threads 16 2>&1 | tail -2
if [ "${1:-}" = ring ]; then
    # shellcheck disable=SC2086
    JAVA_OPTS=-Dcoil.context.positionsPerDevice=2048 run serve --model /tmp/g300 --port 18082 \
        --devices cuda:0,cuda:1 --context-parallel auto ${SERVE_ARGS:-} > /tmp/ring-serve.log 2>&1 &
    # shellcheck disable=SC2086
    run serve --model /tmp/g300 --port 18083 --devices cuda:0 --context-parallel never ${SERVE_ARGS:-} \
        > /tmp/one-serve.log 2>&1 &
    for i in $(seq 1 120); do curl -fs localhost:18082/health >/dev/null && curl -fs localhost:18083/health >/dev/null && break; sleep 1; done
    grep -E "coil:|context|cuda" /tmp/ring-serve.log | head -6
    long=$(python3 -c 'import json,random; random.seed(5); print(json.dumps({"prompt":[random.randrange(1,40000) for _ in range(6000)],"max_tokens":12,"temperature":0,"logprobs":2}))')
    echo "== a 6000-token prompt (past the 2048 positions one GPU is given): two GPUs vs one"
    echo "   (tokens, their logprobs, then each position's margin over the runner-up: the random model's"
    echo "   distributions are nearly flat, so a margin under the two paths' rounding can pick either)"
    for port in 18082 18083; do echo "$long" | curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d @- \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r["choices"][0]; lp=c["logprobs"]; print(lp["tokens"], [round(x,3) for x in lp["token_logprobs"]], "margins", [round(sorted(t.values())[-1]-sorted(t.values())[-2],4) for t in lp["top_logprobs"]], r["paths"], r["timings"])'; done
    echo "== the same prompt streamed: the last chunk's paths"
    echo "$long" | python3 -c 'import json,sys; b=json.load(sys.stdin); b["stream"]=True; print(json.dumps(b))' \
      | curl -sN localhost:18082/v1/completions -H 'content-type: application/json' -d @- | grep -o '"paths":\[[^]]*\]' | tail -1
    echo "== the same prompt with echo and logprobs: prompt logprobs from the sharded scorer, then the sharded run"
    echo "$long" | python3 -c 'import json,sys; b=json.load(sys.stdin); b["echo"]=True; b["logprobs"]=1; b["max_tokens"]=4; print(json.dumps(b))' \
      | curl -s localhost:18082/v1/completions -H 'content-type: application/json' -d @- \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); lp=r["choices"][0]["logprobs"]["token_logprobs"]; print(len(lp), "logprobs,", lp[1:4], "...", lp[-4:], r["paths"])'
    echo "== a short prompt beside it stays batched on cuda:0"
    curl -s localhost:18082/v1/completions -H 'content-type: application/json' -d '{"prompt":[11,22,33,44],"max_tokens":4,"temperature":0}' \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["paths"])'
    echo "== a long prompt with a token outside the vocabulary fails alone; the next long one is answered"
    python3 -c 'import json; print(json.dumps({"prompt":[7]*3000+[10**6],"max_tokens":2}))' \
      | curl -s localhost:18082/v1/completions -H 'content-type: application/json' -d @-; echo
    echo "$long" | curl -s -o /dev/null -w "%{http_code}\n" localhost:18082/v1/completions -H 'content-type: application/json' -d @-
    grep -iE "error|exception" /tmp/ring-serve.log | head -5
    stop_servers
    exit 0
fi
if [ "${1:-}" = experts ]; then
    # A test fixture with routed experts (8 experts, 3 a token), without its tokenizer (prompts as
    # token ids): a GPU server against a CPU server over HTTP.
    rm -rf /tmp/moe && mkdir -p /tmp/moe
    fixture=${EXPERTS_FIXTURE:-granitemoehybrid_moe}
    echo "== fixture $fixture"
    cp engine/src/test/resources/fixtures/$fixture/{config.json,generation_config.json,model.safetensors} /tmp/moe/
    run serve --model /tmp/moe --port 18085 --devices cuda:0 > /tmp/moe-gpu.log 2>&1 &
    run serve --model /tmp/moe --port 18086 --devices cpu --threads 16 > /tmp/moe-cpu.log 2>&1 &
    for i in $(seq 1 90); do curl -fs localhost:18085/health >/dev/null && curl -fs localhost:18086/health >/dev/null && break; sleep 1; done
    echo "== routed experts: greedy, GPU vs CPU (token ids and logprobs), two prompts"
    for prompt in '[5,17,42,99,130,7]' '[250,3,3,301,88,12,64,200,9,111]'; do
        for port in 18085 18086; do curl -s localhost:$port/v1/completions -H 'content-type: application/json' \
            -d "{\"prompt\":$prompt,\"max_tokens\":12,\"temperature\":0,\"logprobs\":0}" \
            | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r["choices"][0]; print(c["logprobs"]["tokens"], [round(x,3) for x in c["logprobs"]["token_logprobs"]], r["paths"])'; done
    done
    echo "== routed experts: prompt_logprobs of a 250-token prompt (the context is 256), GPU vs CPU: the largest difference"
    body=$(python3 -c 'import json,random; random.seed(9); print(json.dumps({"prompt":[random.randrange(1,384) for _ in range(250)],"max_tokens":1,"temperature":0,"prompt_logprobs":1}))')
    for port in 18085 18086; do echo "$body" | curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d @- \
        > /tmp/moe-prompt-$port.json; done
    python3 -c 'import json; g,c=(json.load(open(f"/tmp/moe-prompt-{p}.json"))["choices"][0]["prompt_logprobs"] for p in (18085,18086)); d=[abs(next(iter(a.values()))["logprob"]-next(iter(b.values()))["logprob"]) for a,b in zip(g[1:],c[1:])]; print(len(g), "positions; largest |d logprob|", round(max(d),4), "; positions over 0.03:", [i+1 for i,x in enumerate(d) if x>0.03])'
    echo "== routed experts: 48 requests at once on the GPU (hang-ups, bad requests among them)"
    python3 "${FOLDER:-.gpu-serve}/churn.py" 18085 48 384 256 || echo "churn: FAILED"
    grep -iE "error|exception" /tmp/moe-gpu.log | head -5
    stop_servers
    exit 0
fi
if [ "${1:-}" = invariant ]; then
    # shellcheck disable=SC2086
    run serve --model /tmp/g300 --port 18087 --devices cuda:0 --batch-invariant ${SERVE_ARGS:-} > /tmp/inv-serve.log 2>&1 &
    for i in $(seq 1 120); do curl -fs localhost:18087/health >/dev/null && break; sleep 1; done
    grep -E "coil:|batch-invariant" /tmp/inv-serve.log | head -4
    echo "== --batch-invariant: each request alone, then among 36"
    python3 "${FOLDER:-.gpu-serve}/invariance.py" 18087 || echo "invariance: FAILED"
    stop_servers
    # shellcheck disable=SC2086
    run serve --model /tmp/g300 --port 18088 --devices cuda:0 --no-prefix-caching ${SERVE_ARGS:-} > /tmp/plain-serve.log 2>&1 &
    for i in $(seq 1 120); do curl -fs localhost:18088/health >/dev/null && break; sleep 1; done
    echo "== the default server (prefix cache off), the same requests: expected to differ"
    python3 "${FOLDER:-.gpu-serve}/invariance.py" 18088 || echo "(differs, as expected without the flag)"
    stop_servers
    grep -iE "error|exception" /tmp/inv-serve.log | head -5
    exit 0
fi
if [ "${1:-}" = long ]; then
    # A fresh one-GPU server with its default options: each long prompt's prefill, the first one too
    # (every prompt new, so none is served from the prefix cache).
    # shellcheck disable=SC2086
    run serve --model /tmp/g300 --port 18084 --devices cuda:0 ${SERVE_ARGS:-} > /tmp/long-serve.log 2>&1 &
    for i in $(seq 1 120); do curl -fs localhost:18084/health >/dev/null && break; sleep 1; done
    grep -E "coil:|cuda|prepare" /tmp/long-serve.log | head -6
    request=0
    for length in ${LONG_LENGTHS:-6000 6000 6000 2000 128 6000}; do
        request=$((request + 1)) # a new prompt each time: no prefix of it is cached
        python3 -c "import json,random,sys; random.seed(int(sys.argv[2])); print(json.dumps({'prompt':[random.randrange(1,40000) for _ in range(int(sys.argv[1]))],'max_tokens':4,'temperature':0}))" $length $request \
          | curl -s localhost:18084/v1/completions -H 'content-type: application/json' -d @- -w ' %{time_total}\n' \
          | python3 -c 'import json,sys; t=sys.stdin.read().rsplit(" ",1); r=json.loads(t[0]); print(r["usage"]["prompt_tokens"], "prompt tokens: prefill_ms", round(r["timings"]["prefill_ms"],1), "curl s", t[1].strip(), r["paths"])'
    done
    grep -iE "error|exception" /tmp/long-serve.log | head -5
    stop_servers
    exit 0
fi
run serve --model /tmp/g300 --port 18080 > /tmp/gpu-serve.log 2>&1 &
run serve --model /tmp/g300 --port 18081 --devices cpu --threads 16 > /tmp/cpu-serve.log 2>&1 &
for i in $(seq 1 90); do curl -fs localhost:18080/health >/dev/null && curl -fs localhost:18081/health >/dev/null && break; sleep 1; done
grep -E "coil:|auto|cuda" /tmp/gpu-serve.log | head -5
echo "== greedy, GPU vs CPU (token ids), with their logprobs (on the GPU computed beside the draw)"
body='{"prompt":[11,22,33,44,55,66,77,88],"max_tokens":12,"temperature":0,"logprobs":0}'
for port in 18080 18081; do curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d "$body" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r["choices"][0]; print(c["logprobs"]["tokens"], [round(x,3) for x in c["logprobs"]["token_logprobs"]], r["paths"], r["timings"]["decode_tokens_per_second"])'; done
echo "== top logprobs, GPU vs CPU: the first three positions' three most likely tokens"
body='{"prompt":[11,22,33,44,55,66,77,88],"max_tokens":3,"temperature":0,"logprobs":3}'
for port in 18080 18081; do curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d "$body" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); lp=r["choices"][0]["logprobs"]["top_logprobs"]; print([{k: round(v,3) for k,v in t.items()} for t in lp])'; done
echo "== prompt_logprobs of a 600-token prompt, GPU (scored on the device) vs CPU: positions, the largest"
echo "   difference of a prompt token's logprob, ranks that differ (near ties), the first two positions"
body=$(python3 -c 'import json,random; random.seed(9); print(json.dumps({"prompt":[random.randrange(1,40000) for _ in range(600)],"max_tokens":1,"temperature":0,"prompt_logprobs":2}))')
for port in 18080 18081; do echo "$body" | curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d @- \
  > /tmp/prompt-logprobs-$port.json; done
python3 - <<'PY'
import json
gpu, cpu = (json.load(open(f"/tmp/prompt-logprobs-{port}.json"))["choices"][0]["prompt_logprobs"] for port in (18080, 18081))
first = lambda entry: next(iter(entry.items()))
pairs = [(first(g), first(c)) for g, c in zip(gpu[1:], cpu[1:])]
print(len(gpu), "positions; same prompt tokens:", all(g[0] == c[0] for g, c in pairs),
      "; largest |d logprob|:", round(max(abs(g[1]["logprob"] - c[1]["logprob"]) for g, c in pairs), 4),
      "; ranks differing:", sum(g[1]["rank"] != c[1]["rank"] for g, c in pairs),
      "(largest difference", max(abs(g[1]["rank"] - c[1]["rank"]) for g, c in pairs), ")")
for entries in (gpu[1:3], cpu[1:3]):
    print([{k: (round(v["logprob"], 3), v["rank"]) for k, v in e.items()} for e in entries])
PY
echo "== sampled + streamed on the GPU (seed 7), twice"
for k in 1 2; do curl -sN localhost:18080/v1/completions -H 'content-type: application/json' \
  -d '{"prompt":[5,6,7,8],"max_tokens":8,"temperature":0.9,"top_p":0.9,"seed":7,"stream":true,"logprobs":0,"stream_options":{"include_usage":true}}' \
  | grep -o '"tokens":\["[^]]*\]' | tr -d '\n'; echo; done
echo "== logit_bias, GPU vs CPU: +100 on token 1000, a stop token, ends each request at its first token"
echo "   (the GPU picks the token on the device: greedy and sampled draws); without it, no stop"
for bias in '"logit_bias":{"1000":100},' ''; do for sampling in '"temperature":0' '"temperature":0.9,"seed":3'; do
  for port in 18080 18081; do curl -s localhost:$port/v1/completions -H 'content-type: application/json' \
    -d "{\"prompt\":[11,22,33,44],\"max_tokens\":8,$bias$sampling,\"stop_token_ids\":[1000]}" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r["choices"][0]; print(sys.argv[1], sys.argv[2], c["finish_reason"], c["stop_reason"], r["usage"]["completion_tokens"], "tokens")' "$port" "${bias:-no bias} $sampling"
  done; done; done
echo "== 16 concurrent requests on the GPU"
seq 1 16 | xargs -P 16 -I{} curl -s localhost:18080/v1/completions -H 'content-type: application/json' \
  -d '{"prompt":[1,2,3,{}],"max_tokens":32,"temperature":0}' | python3 -c 'import sys,json; d=sys.stdin.read().replace("}{","}\n{").splitlines(); print(len(d), "responses;", sorted(set(json.loads(x)["choices"][0]["finish_reason"] for x in d)))'
echo "== 48 requests at once, greedy and seeded, some clients hanging up mid-stream, bad ones among them"
python3 "${FOLDER:-.gpu-serve}/churn.py" 18080 48 40000 || echo "churn: FAILED"
echo "== a bad request, then the server still answers"
curl -s localhost:18080/v1/completions -H 'content-type: application/json' -d '{"prompt":[1,2],"temperature":-1}'; echo
curl -s -o /dev/null -w "%{http_code}\n" localhost:18080/v1/completions -H 'content-type: application/json' -d '{"prompt":[1,2],"max_tokens":2}'
echo "== /metrics"
curl -s localhost:18080/metrics | grep -E "^coil_(requests|generated|kv|prefix)" | head -8
stop_servers
