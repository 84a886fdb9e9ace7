# syntax=docker/dockerfile:1
#
# Coil in a container. Two targets:
#   GPU (the default, last stage): docker build -t coil .
#                                  docker run --gpus all -p 8080:8080 coil
#   CPU only, on a plain JRE:      docker build --target cpu -t coil-cpu .
#                                  docker run -p 8080:8080 coil-cpu
# Models are mounted at /models:   docker run --gpus all -p 8080:8080 -v ~/models:/models coil serve --model /models/granite-4.0-h-350m
# Hub models download to /models:  docker run --gpus all -p 8080:8080 -v coil-models:/models -e HF_TOKEN coil serve ibm-granite/granite-4.0-h-350m
# Without --model the bundled demo model is served.

# Base images, pinned.
FROM eclipse-temurin:25.0.1_8-jdk-noble AS jdk
FROM eclipse-temurin:25.0.1_8-jre-noble AS jre

# ---- builder: CUDA's compiler, JDK 25 and the Maven wrapper build the jars and the GPU kernels ----
FROM nvidia/cuda:13.0.1-devel-ubuntu24.04 AS builder
COPY --from=jdk /opt/java/openjdk /opt/java/openjdk
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/opt/java/openjdk/bin:$PATH
WORKDIR /src
# The wrapper and the poms first, so that dependencies stay in a cached layer while sources change.
COPY mvnw ./
COPY .mvn/ .mvn/
COPY pom.xml ./
COPY engine/pom.xml engine/
COPY web/pom.xml web/
COPY server/pom.xml server/
RUN ./mvnw -B -q -ntp dependency:go-offline -DexcludeGroupIds=dev.coil || true
COPY engine/src/main/ engine/src/main/
COPY web/src/main/ web/src/main/
COPY server/src/main/ server/src/main/
# The engine's build runs it (nvcc over engine/src/main/cuda into the jar's fatbin).
COPY scripts/build-kernels.sh scripts/
RUN ./mvnw -B -ntp -DskipTests package \
 && mkdir -p /opt/coil/lib \
 && cp server/target/coil-server-*.jar server/target/lib/*.jar /opt/coil/lib/
COPY models/coil-demo/ /opt/coil/models/coil-demo/

# ---- cpu: the same server on a plain JRE 25, no CUDA ----
FROM jre AS cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home coil \
 && mkdir -p /models && chown coil /models
COPY --from=builder /opt/coil /opt/coil
USER coil
WORKDIR /home/coil
# Listen on every interface, so that a container started with the one argument "serve" (as SageMaker
# starts one, replacing CMD and its --host) is reachable;
# COIL_MODEL, when set, names the model folder --model leaves out (SageMaker's /opt/ml/model).
ENV COIL_HOST=0.0.0.0
# A model named on the Hugging Face Hub is downloaded into the /models volume, kept from run to run.
ENV HF_HOME=/models/huggingface
EXPOSE 8080
VOLUME ["/models"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["java", "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", \
  "-XX:+UseParallelGC", "-Dcoil.home=/opt/coil", "-cp", "/opt/coil/lib/*", "dev.coil.server.Main"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

# ---- gpu (default): CUDA's runtime with cuBLAS, a JRE 25, the server ----
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS gpu
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/opt/java/openjdk/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home coil \
 && mkdir -p /models && chown coil /models
COPY --from=builder /opt/coil /opt/coil
USER coil
WORKDIR /home/coil
# Listen on every interface, so that a container started with the one argument "serve" (as SageMaker
# starts one, replacing CMD and its --host) is reachable;
# COIL_MODEL, when set, names the model folder --model leaves out (SageMaker's /opt/ml/model).
ENV COIL_HOST=0.0.0.0
# A model named on the Hugging Face Hub is downloaded into the /models volume, kept from run to run.
ENV HF_HOME=/models/huggingface
EXPOSE 8080
VOLUME ["/models"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["java", "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", \
  "-XX:+UseParallelGC", "-Dcoil.home=/opt/coil", "-cp", "/opt/coil/lib/*", "dev.coil.server.Main"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
