#!/usr/bin/env bash
# Packs the HTTP server for the GPU machine (CUDA, no Java): a Java runtime and the server's jars,
# without the libraries a model with no tokenizer never loads (DJL tokenizers, Jinjava and theirs),
# so that everything travels in 64 MiB with the checkout. The run (scripts/gpu-serve-run.sh, copied
# into the folder) writes a random 304M GraniteMoeHybrid, starts `coil serve` on the GPU and on the
# CPU, and sends real HTTP requests with curl.
#
#   scripts/gpu-serve-check.sh [FOLDER]        then on the GPU machine: bash FOLDER/serve.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
folder=${1:-.gpu-serve}
out="$repo/$folder"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
[ -x "$JAVA_HOME/bin/jlink" ] || export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
cd "$repo"
./mvnw -q -B -DskipTests package
grep -qx "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >> .git/info/exclude
rm -rf "$out/lib" && mkdir -p "$out/lib"
for jar in server/target/lib/*.jar server/target/coil-server-*.jar; do
    case $(basename "$jar") in
        tokenizers-*|api-0.*|jna-*|gson-*|commons-compress-*|commons-io-*|commons-codec-*|jinjava-*|guava-*|\
        javassist-*|protobuf-*|big-math-*|algebra-*|re2j-*|commons-net-*|java-ipv6-*|jackson-dataformat-yaml-*|\
        snakeyaml-*|failureaccess-*|checker-qual-*|j2objc-*|jsr305-*|hubspot-style-*|immutable*|encode-*|\
        derive4j-*|commons-lang3-*|listenablefuture-*|annotations-3.*|jackson-datatype-jdk8-*) ;;
        *) cp "$jar" "$out/lib/" ;;
    esac
done
natives=$(ls "$out"/lib/jcuda-natives-*.jar)
tmp=$(mktemp -d)
(cd "$tmp" && "$JAVA_HOME/bin/jar" --extract --file "$natives" && "$JAVA_HOME/bin/jar" --create --file "$natives" \
    lib/libJCudaDriver-*)
rm -rf "$tmp"
if [ ! -f "$out/jre.txz" ]; then
    tmp=$(mktemp -d)
    "$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,java.net.http,jdk.httpserver,jdk.unsupported,\
java.management,jdk.management,jdk.incubator.vector,java.naming,java.sql,java.xml,jdk.crypto.ec,jdk.zipfs,\
java.instrument,jdk.jfr --strip-debug --no-header-files --no-man-pages --output "$tmp/jre"
    tar cf - -C "$tmp" jre | xz -9 -T0 > "$out/jre.txz"
    rm -rf "$tmp"
fi
cp scripts/gpu-serve-run.sh "$out/serve.sh"
cp scripts/gpu-serve-churn.py "$out/churn.py"
cp scripts/gpu-serve-invariance.py "$out/invariance.py"
echo "prepared $folder: $(du -sh "$out" | cut -f1); run on the GPU machine with carry [\"$folder\"]: FOLDER=$folder bash $folder/serve.sh"
