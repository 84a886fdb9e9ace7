#!/usr/bin/env bash
# Runs on the GPU machine from the checkout root with the folder scripts/gpu-serve-check.sh prepared.
# The HTTP server on the GPU machine: a random 304M GraniteMoeHybrid (bf16, no tokenizer: prompts
# as token ids), `coil serve --devices auto`, then real HTTP requests with curl.
set -u
tar xJf ${FOLDER:-.gpu-serve}/jre.txz -C /tmp && export PATH=/tmp/jre/bin:$PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() { java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp "${FOLDER:-.gpu-serve}/lib/*" dev.coil.server.Main "$@"; }
run bench --cache-dir /tmp/g300 --prompt-lengths 4 --decode-tokens 2 --threads 16 2>&1 | tail -2
run serve --model /tmp/g300 --port 18080 > /tmp/gpu-serve.log 2>&1 &
run serve --model /tmp/g300 --port 18081 --devices cpu --threads 16 > /tmp/cpu-serve.log 2>&1 &
for i in $(seq 1 90); do curl -fs localhost:18080/health >/dev/null && curl -fs localhost:18081/health >/dev/null && break; sleep 1; done
grep -E "coil:|auto|cuda" /tmp/gpu-serve.log | head -5
echo "== greedy, GPU vs CPU (token ids)"
body='{"prompt":[11,22,33,44,55,66,77,88],"max_tokens":12,"temperature":0,"logprobs":0}'
for port in 18080 18081; do curl -s localhost:$port/v1/completions -H 'content-type: application/json' -d "$body" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r["choices"][0]; print(c["logprobs"]["tokens"], [round(x,3) for x in c["logprobs"]["token_logprobs"]], r["paths"], r["timings"]["decode_tokens_per_second"])'; done
echo "== sampled + streamed on the GPU (seed 7), twice"
for k in 1 2; do curl -sN localhost:18080/v1/completions -H 'content-type: application/json' \
  -d '{"prompt":[5,6,7,8],"max_tokens":8,"temperature":0.9,"top_p":0.9,"seed":7,"stream":true,"logprobs":0,"stream_options":{"include_usage":true}}' \
  | grep -o '"tokens":\["[^]]*\]' | tr -d '\n'; echo; done
echo "== 16 concurrent requests on the GPU"
seq 1 16 | xargs -P 16 -I{} curl -s localhost:18080/v1/completions -H 'content-type: application/json' \
  -d '{"prompt":[1,2,3,{}],"max_tokens":32,"temperature":0}' | python3 -c 'import sys,json; d=sys.stdin.read().replace("}{","}\n{").splitlines(); print(len(d), "responses;", sorted(set(json.loads(x)["choices"][0]["finish_reason"] for x in d)))'
echo "== a bad request, then the server still answers"
curl -s localhost:18080/v1/completions -H 'content-type: application/json' -d '{"prompt":[1,2],"temperature":-1}'; echo
curl -s -o /dev/null -w "%{http_code}\n" localhost:18080/v1/completions -H 'content-type: application/json' -d '{"prompt":[1,2],"max_tokens":2}'
echo "== /metrics"
curl -s localhost:18080/metrics | grep -E "^coil_(requests|generated|kv|prefix)" | head -8
kill %1 %2 2>/dev/null; sleep 1
