#!/usr/bin/env bash
# Builds the engine and its GPU tests here, packs what the GPU machine needs (a trimmed Java
# runtime, the jars, the JUnit console launcher) into a folder of the checkout that the device
# tool sends, and prints the one command that runs every GPU test there.
#
#   scripts/gpu-check.sh [CHECKOUT [FOLDER]]
#
# CHECKOUT: the repository the device tool sends (default: this one); FOLDER: the folder inside it
# that travels, named in the run's carry list (default: .gpu). The GPU machine has CUDA but no Java
# or Maven; everything travels in FOLDER (at most 64 MiB with the checkout's tracked files).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
checkout=$(cd "${1:-$repo}" && pwd)
folder=${2:-.gpu}
out="$checkout/$folder"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
[ -x "$JAVA_HOME/bin/jlink" ] || export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
junit_version=6.1.3
console="junit-platform-console-standalone-$junit_version.jar"

cd "$repo"
bash scripts/build-kernels.sh --find-nvcc >/dev/null \
    || { echo "gpu-check: nvcc is needed here to build the kernels" >&2; exit 1; }
./mvnw -q -B -pl engine package -DskipTests
[ -f engine/target/classes/coil/cuda/coil.fatbin ] || { echo "gpu-check: the build made no fatbin" >&2; exit 1; }

exclude=$(git -C "$checkout" rev-parse --git-path info/exclude)
case "$exclude" in /*) ;; *) exclude="$checkout/$exclude" ;; esac
grep -qx "/$folder/" "$exclude" 2>/dev/null || echo "/$folder/" >> "$exclude"
mkdir -p "$out"
rm -rf "$out/lib" "$out"/*.jar "$out/args.txt"
mkdir -p "$out/lib"

# 1. A Java runtime with only the modules the tests load (JUnit reads jars through jdk.zipfs and writes XML reports through java.xml), its
#    class image left uncompressed and libjvm's symbol table dropped: xz then packs it to ~14 MB.
modules=java.base,java.logging,java.management,java.xml,jdk.unsupported,jdk.zipfs,jdk.incubator.vector,jdk.management
stamp="$out/jre.modules"
if [ ! -f "$out/jre.txz" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$modules" ]; then
    tmp=$(mktemp -d)
    "$JAVA_HOME/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
        --output "$tmp/jre"
    if command -v strip >/dev/null; then
        strip --strip-unneeded "$tmp/jre/lib/server/libjvm.so"
    fi
    tar cf - -C "$tmp" jre | xz -9 -T0 > "$out/jre.txz"
    rm -rf "$tmp"
    echo "$modules" > "$stamp"
fi

# 2. The engine, its GPU test classes, and the dependencies they touch (the model tests load
#    checkpoints and compare with the CPU engine). JUnit itself comes
#    from the console launcher; of JCuda's natives only the driver binding travels.
cp engine/target/coil-engine-*.jar "$out/coil-engine.jar"
# The GPU machines are Hopper: unless COIL_TRAVEL_ARCH=all, the travelling jar's fatbin holds sm_90a
# alone (8 MB against 17 MB with sm_80 and PTX), so that what travels fits the device tool's 64 MiB.
if [ "${COIL_TRAVEL_ARCH:-sm_90a}" != all ]; then
    nvcc_bin=$(bash "$repo/scripts/build-kernels.sh" --find-nvcc)
    tmp=$(mktemp -d)
    mkdir -p "$tmp/coil/cuda"
    for kernel in engine/src/main/cuda/*.cu; do echo "#include \"$repo/$kernel\""; done > "$tmp/unit.cu"
    "$nvcc_bin" -fatbin -O3 -std=c++17 --threads 0 -I engine/src/main/cuda \
        -gencode=arch=compute_90a,code=sm_90a -o "$tmp/coil/cuda/coil.fatbin" "$tmp/unit.cu"
    "$JAVA_HOME/bin/jar" --update --file "$out/coil-engine.jar" -C "$tmp" coil/cuda/coil.fatbin
    rm -rf "$tmp"
fi
"$JAVA_HOME/bin/jar" --create --file "$out/coil-engine-tests.jar" -C engine/target/test-classes dev/coil/engine/gpu \
    -C engine/target/test-classes dev/coil/engine/model -C engine/target/test-classes dev/coil/engine/runner
./mvnw -q -B -pl engine dependency:copy-dependencies -DincludeScope=test \
    -DincludeArtifactIds=jcuda,jcuda-natives,assertj-core,jackson-databind,jackson-core,jackson-annotations,slf4j-api,caffeine,tokenizers,api,gson,jna -DoutputDirectory="$out/lib"
# (DJL's commons-compress, -io and -codec serve its downloads, which a tokenizer read from a folder never
# makes.) Of JNA's natives only linux-x86-64's travel.
jna=$(ls "$out"/lib/jna-*.jar)
tmp=$(mktemp -d)
(cd "$tmp" && "$JAVA_HOME/bin/jar" --extract --file "$jna" \
    && find com/sun/jna -mindepth 1 -maxdepth 1 -type d ! -name linux-x86-64 ! -name ptr ! -name win32 -exec rm -rf {} + \
    && rm -f "$jna" && "$JAVA_HOME/bin/jar" --create --file "$jna" .)
rm -rf "$tmp"
natives=$(ls "$out"/lib/jcuda-natives-*.jar)
tmp=$(mktemp -d)
(cd "$tmp" && "$JAVA_HOME/bin/jar" --extract --file "$natives" && "$JAVA_HOME/bin/jar" --create \
    --file "$natives" lib/libJCudaDriver-*)
rm -rf "$tmp"
# The fixtures carry tokenizers: of DJL's bundled tokenizer libraries only the linux-x86_64 one travels.
tokenizers=$(ls "$out"/lib/tokenizers-*.jar)
tmp=$(mktemp -d)
(cd "$tmp" && "$JAVA_HOME/bin/jar" --extract --file "$tokenizers" \
    && find native/lib -mindepth 1 -maxdepth 1 -type d ! -name linux-x86_64 -exec rm -rf {} + \
    && "$JAVA_HOME/bin/jar" --create --file "$tokenizers" .)
rm -rf "$tmp"
./mvnw -q -B dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$junit_version" \
    -DoutputDirectory="$out"

# 3. The launcher's arguments, relative to the checkout's root where the command runs.
{
    echo "execute"
    echo "--class-path"
    # The fixture models are read from the checkout's test resources, which travel with it.
    (echo engine/src/test/resources; cd "$checkout" && ls "$folder"/coil-engine.jar "$folder"/coil-engine-tests.jar \
        "$folder"/lib/*.jar) | paste -sd:
    echo "--select-package"
    echo "dev.coil.engine.gpu"
    echo "--select-package"
    echo "dev.coil.engine.runner"
    echo "--include-tag"
    echo "gpu"
    echo "--details=tree"
    echo "--disable-banner"
    echo "--disable-ansi-colors"
    echo "--fail-if-no-tests"
} > "$out/args.txt"

# The device tool counts the files' space on disk (1 KiB blocks, as du), not their bytes.
tracked=$(git -C "$checkout" ls-files -z | (cd "$checkout" && xargs -0 du -ck 2>/dev/null) | tail -1 | cut -f1)
carried=$(du -sk "$out" | cut -f1)
echo "prepared $folder: $((carried / 1024)) MiB + $((tracked / 1024)) MiB tracked = $(((tracked + carried) / 1024)) MiB of 64 MiB"
if [ $((tracked + carried)) -gt $((64 * 1024 - 512)) ]; then
    demo=models/coil-demo/model.safetensors
    echo "over the device tool's 64 MiB: the GPU tests and benchmarks do not read the bundled model's weights; set them aside"
    echo "for the call (mv $demo /tmp/coil-demo.safetensors) and put them back after"
    echo "(mv /tmp/coil-demo.safetensors $demo)."
fi
cp "$repo/scripts/gpu-run.sh" "$out/gpu-run.sh"
echo "run on the GPU machine with carry [\"$folder\"] (tests, serving benchmark, anchors: scripts/gpu-run.sh):"
echo "bash $folder/gpu-run.sh all $folder"
echo "batch-1 decode under several property sets, alternately on one card:"
echo "VARIANTS=\$'-Dx=default\\n-Dcoil.cuda.gemvOverlap=false' bash $folder/gpu-run.sh ab $folder"
echo "on two GPUs (kind nvidia-h100-x2), context parallelism's checks and prefill benchmark:"
echo "bash $folder/gpu-run.sh ring $folder"
echo "or the tests alone:"
echo "tar xJf $folder/jre.txz -C /tmp && export PATH=/tmp/jre/bin:\$PATH && java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -jar $folder/$console @$folder/args.txt --reports-dir \${OUT:-/tmp}/junit"
