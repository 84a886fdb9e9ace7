#!/usr/bin/env bash
# Runs on the GPU machine, from the checkout's root, with the folder scripts/gpu-check.sh prepared
# (default .gpu): the GPU tests, then the GPU serving benchmark, then ../shared/bench/gpu_anchors.py
# when the folder carries it (with mamba_ssm's ops in FOLDER/mpkg), so that every figure is
# measured in one call on one card. Logs go to $OUT (or /tmp).
#
#   bash .gpu/gpu-run.sh [all|tests|bench|ab|jars|ring|ringbench] [FOLDER]
#
# ring (two GPUs: nvidia-h100-x2): the multi-gpu tagged tests, two GPUs against one (and four where
# the machine has them), then the 64k/128k sharded prefill benchmark (RING_TOKENS=a,b to change the
# sizes, RING_GPUS=2,4 the rings, RING_SSD_PRECISION=tf32 the scan's precision, RING_SECONDS its time
# limit, default 400). ringbench: the benchmark alone.
#
# ab: batch-1 decode alone (GpuServingTimingTest with -Dcoil.bench.runs=0, or RUNS) once for each
# JVM property set in $VARIANTS, one set a line, in the order given. Repeat the lines (A, B, A, B,
# ...) so that settings are compared on one card in one call:
#   VARIANTS=$'-Dx=default\n-Dcoil.cuda.gemvOverlap=false\n-Dx=default\n-Dcoil.cuda.gemvOverlap=false' \
#       bash .gpu/gpu-run.sh ab .gpu
#
# jars: the same for two builds: the engine jar of an earlier build put in FOLDER/old-engine.jar, and
# $JARS naming the order ("old new old new"; "new4" is the new jar with -Dcoil.cuda.gemvRows=4).
# Each runs GpuServingTimingTest with -Dcoil.bench.runs=${RUNS:-0}.
#
# TESTS, when set, replaces the test selection (JUnit console options, e.g. --select-class X).
# JAVA_PROPS, when set, goes to the JVM (e.g. "-Dcoil.bench.runs=0 -Dcoil.cuda.persistentDecode=true").
set -u
part=${1:-all}
folder=${2:-.gpu}
out=${OUT:-/tmp}
tar xJf "$folder/jre.txz" -C /tmp && export PATH=/tmp/jre/bin:$PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
classpath=$(sed -n 3p "$folder/args.txt")
# shellcheck disable=SC2206
jvm=(java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED ${JAVA_PROPS:-})
console=(-jar "$folder"/junit-platform-console-standalone-*.jar
    execute --class-path "$classpath" --details=tree --disable-banner --disable-ansi-colors)
junit=("${jvm[@]}" "${console[@]}")
# One GpuServingTimingTest run in a JVM of its own, for ab and jars:
#   serving_run NAME SECONDS CLASSPATH [JVM OPTIONS...]   (log: $out/NAME.log, reports: $out/junit-NAME)
serving_run() {
    local name=$1 seconds=$2 run_classpath=$3
    shift 3
    timeout "$seconds" "${jvm[@]}" -Dcoil.bench.runs=${RUNS:-0} "$@" -jar "$folder"/junit-platform-console-standalone-*.jar \
        execute --class-path "$run_classpath" --details=tree --disable-banner --disable-ansi-colors --include-tag gpu \
        --select-class dev.coil.engine.runner.GpuServingTimingTest --reports-dir "$out/junit-$name" 2>&1 \
        | tee "$out/$name.log"
}
if [ "$part" = all ] || [ "$part" = tests ]; then
    # shellcheck disable=SC2086
    timeout 420 "${junit[@]}" --include-tag gpu ${TESTS:---select-package dev.coil.engine.gpu --select-package dev.coil.engine.runner \
        --exclude-classname .*TimingsTest --exclude-classname .*TimingTest} --reports-dir "$out/junit-tests" 2>&1 \
        | tee "$out/tests.log" | grep -E "\[parity\]|✘|tests (successful|failed)|Exception" | tail -200
fi
if [ "$part" = all ] || [ "$part" = bench ]; then
    timeout 300 "${junit[@]}" --include-tag gpu --select-class dev.coil.engine.runner.GpuServingTimingTest \
        --reports-dir "$out/junit-bench" 2>&1 | tee "$out/bench.log" | grep -E "gpu-serving|\[gpu\]|tests (successful|failed)|Exception"
    if [ -f "$folder/gpu_anchors.py" ]; then
        PYTHONPATH="$folder/mpkg" timeout 300 python "$folder/gpu_anchors.py" 2>&1 | grep -vE "UserWarning|ms = bench" \
            | tee "$out/anchors.log" | tail -60
    fi
fi
if [ "$part" = ab ]; then
    i=0
    while IFS= read -r properties; do
        [ -z "$properties" ] && continue
        i=$((i + 1))
        echo "== $(date -u +%H:%M:%S) $properties"
        # shellcheck disable=SC2086
        serving_run "ab-$i" 120 "$classpath" $properties | grep -E "gpu-serving|tests failed|Exception" \
            | sed 's/; /;\n    /g'
    done <<< "${VARIANTS:?set VARIANTS to the property sets to compare, one a line}"
fi
if [ "$part" = jars ]; then
    i=0
    for which in ${JARS:?set JARS to the order of the builds, e.g. "old new old new"}; do
        i=$((i + 1))
        jar_classpath=$classpath
        extra=""
        # old-engine.jar: the old build's classes, found first; resources (the kernels) may come from the new jar.
        [ "$which" = old ] && jar_classpath=${classpath//$folder\/coil-engine.jar/$folder\/old-engine.jar:$folder\/coil-engine.jar}
        [ "$which" = new4 ] && extra="-Dcoil.cuda.gemvRows=4"
        echo "== $(date -u +%H:%M:%S) $which"
        # shellcheck disable=SC2086
        serving_run "jar-$i" 150 "$jar_classpath" $extra | grep -E "gpu-serving\] cuda|tests failed|Exception"
    done
fi
if [ "$part" = ring ]; then
    timeout 300 "${junit[@]}" --include-tag multi-gpu --select-class dev.coil.engine.gpu.model.TwoGpuShardedModelTest \
        --reports-dir "$out/junit-ring-tests" 2>&1 | tee "$out/ring-tests.log" \
        | grep -E "\[gpu-ring\]|✘|tests (successful|failed)|Exception" | tail -80
fi
if [ "$part" = ring ] || [ "$part" = ringbench ]; then
    timeout ${RING_SECONDS:-400} "${junit[@]}" --include-tag multi-gpu --select-class dev.coil.engine.gpu.model.RingPrefillTimingTest \
        --reports-dir "$out/junit-ring-bench" 2>&1 \
        | tee "$out/ring-bench.log" | grep -E "\[gpu-ring\]|\[gpu\]|tests (successful|failed)|Exception"
fi
