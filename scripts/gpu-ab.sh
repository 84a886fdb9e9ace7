#!/usr/bin/env bash
# Runs on the GPU machine, from the checkout's root, with the folder scripts/gpu-check.sh prepared
# (default .gpu): batch-1 decode alone (GpuServingTimingTest with -Dcoil.bench.runs=0, or RUNS) once
# for each JVM property set in $VARIANTS, one set a line, in the order given. Repeat the lines
# (A, B, A, B, ...) so that variants are compared on one card in one call. Logs go to $OUT (or /tmp).
#
#   VARIANTS=$'-Dx=default\n-Dcoil.cuda.gemvOverlap=true\n-Dx=default\n-Dcoil.cuda.gemvOverlap=true' \
#       bash .gpu/gpu-ab.sh [FOLDER]
set -u
folder=${1:-.gpu}
out=${OUT:-/tmp}
tar xJf "$folder/jre.txz" -C /tmp && export PATH=/tmp/jre/bin:$PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
classpath=$(sed -n 3p "$folder/args.txt")
i=0
while IFS= read -r properties; do
    [ -z "$properties" ] && continue
    i=$((i + 1))
    echo "== $(date -u +%H:%M:%S) $properties"
    # shellcheck disable=SC2086
    timeout 120 java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
        -Dcoil.bench.runs=${RUNS:-0} $properties \
        -jar "$folder"/junit-platform-console-standalone-*.jar execute --class-path "$classpath" --details=tree \
        --disable-banner --disable-ansi-colors --include-tag gpu \
        --select-class dev.coil.engine.runner.GpuServingTimingTest --reports-dir "$out/junit-ab-$i" 2>&1 \
        | tee "$out/ab-$i.log" | grep -E "gpu-serving|tests failed|Exception" | sed 's/; /;\n    /g' | head -200
done <<< "${VARIANTS:?set VARIANTS to the property sets to compare, one a line}"
