#!/usr/bin/env bash
# Spark's table connectors, resolved ONCE from Maven Central into a cache outside the repository,
# for the pyspark of the `spark` extra to load with `spark.jars` (lakehouse.compute.connector_jars
# finds them by pyspark's version; nothing is fetched when a session starts):
#
#   io.delta:delta-spark_<spark>_2.13    Delta Lake (format "delta", its SQL extension and catalog)
#   org.apache.iceberg:iceberg-spark-runtime-<spark>_2.13
#                                        Iceberg (a JDBC catalog on the database pyiceberg's
#                                        SqlCatalog writes: same `iceberg_tables` layout)
#   org.apache.hadoop:hadoop-aws         S3A, with the AWS SDK bundle it is built against
#   org.postgresql:postgresql            JDBC driver of the Postgres catalog
#   org.xerial:sqlite-jdbc               JDBC driver of the embedded default's SQLite catalog
#
# Versions are pinned below; Maven checks every file against the checksum Maven Central publishes
# (--strict-checksums) and the install records the SHA-256 of what it kept (SHA256SUMS).
# Dependencies pyspark already ships (Scala, Jackson, Hadoop client, Parquet, logging) are left
# out: Spark's own copies come first on the class path, so a second copy is only a conflict.
#
#   deploy/local/spark.sh install   resolve into the cache (idempotent, locked); prints the folder
#   deploy/local/spark.sh path      print the folder when installed, else exit 1 (no network)
#   deploy/local/spark.sh pom       print the Maven project it resolves
#
# Environment (all optional):
#   LAKEHOUSE_CACHE    the cache (default ${XDG_CACHE_HOME:-~/.cache}/lakehouse); the jars go to
#                      $LAKEHOUSE_CACHE/spark-jars/spark-<pyspark version>
#   LAKEHOUSE_PYTHON   the Python whose pyspark the jars are for (default .venv/bin/python)
#   SPARK_MAVEN_REPO   a Maven Central mirror (default: Maven Central)
set -euo pipefail

# The connectors are compiled against Spark's internals: each is built per Spark minor version.
# What Maven Central serves (December 2026), and what was run here (tests/integration/
# test_spark_native.py):
#   Spark 4.1  delta-spark_4.1_2.13 4.4.0 + iceberg-spark-runtime-4.1_2.13 1.12.0
#   Spark 4.2  delta-spark_4.2_2.13 4.4.0 (= delta-spark_2.13 4.4.0); no Iceberg runtime for 4.2
#   Spark 4.3  neither: delta-spark 4.4.0 (built on 4.2) fails on 4.3 reading any table
#              (NoSuchMethodError LogicalRDD.<init>), iceberg-spark-runtime-4.1 fails at its first
#              statement (IncompatibleClassChangeError: SparkView implements ...catalog.View,
#              which 4.3 made a class)
# hadoop-aws = the version of the hadoop-client jars in pyspark's jars/ folder; it brings the AWS
# SDK bundle it is built against (600-690 MB: the SDK with its libraries shaded, which Hadoop
# recommends over the SDK's separate modules).
DELTA_VERSION=4.4.0
ICEBERG_VERSION=1.12.0
POSTGRES_JDBC_VERSION=42.7.14
SQLITE_JDBC_VERSION=3.54.1.0

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
CACHE=${LAKEHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lakehouse}
ROOT="$CACHE/spark-jars"
REPO=${SPARK_MAVEN_REPO:-https://repo1.maven.org/maven2}
PYTHON=${LAKEHOUSE_PYTHON:-$PROJECT/.venv/bin/python}

log() { printf 'spark-jars: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# pyspark's version and the Hadoop of its jars/ folder
PYSPARK_DIR=$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null) \
    || die "pyspark is not installed for $PYTHON (make venv-dev installs the spark extra)"
SPARK_VERSION=$("$PYTHON" -c 'import pyspark; print(pyspark.__version__)')
SPARK_MINOR=$(echo "$SPARK_VERSION" | cut -d. -f1,2)
HADOOP_VERSION=$(ls "$PYSPARK_DIR/jars" | sed -n 's/^hadoop-client-api-\(.*\)\.jar$/\1/p' | head -n 1)
[ -n "$HADOOP_VERSION" ] || die "no hadoop-client-api jar in $PYSPARK_DIR/jars"

case "$SPARK_MINOR" in
    4.1 | 4.2) ;;
    *) die "no Delta and Iceberg connectors are published for Spark $SPARK_MINOR (pyspark $SPARK_VERSION); Spark 4.1 has both (pip install 'pyspark==4.1.*')" ;;
esac
DELTA_ARTIFACT="delta-spark_${SPARK_MINOR}_2.13"
ICEBERG_ARTIFACT="iceberg-spark-runtime-${SPARK_MINOR}_2.13"
# no Iceberg runtime is built for Spark 4.2 yet: Delta only there
[ "$SPARK_MINOR" = 4.2 ] && ICEBERG_ARTIFACT=""

TAG="spark-$SPARK_VERSION delta-$DELTA_VERSION iceberg-${ICEBERG_ARTIFACT:+$ICEBERG_VERSION} hadoop-aws-$HADOOP_VERSION postgresql-$POSTGRES_JDBC_VERSION sqlite-jdbc-$SQLITE_JDBC_VERSION"
INSTALL="$ROOT/spark-$SPARK_VERSION"

# what pyspark ships itself (its jars/ folder), left out of the connectors' dependencies
EXCLUDED=(
    org.scala-lang:scala-library com.fasterxml.jackson.core:* com.fasterxml.jackson.datatype:*
    org.apache.hadoop:hadoop-client-api org.apache.hadoop:hadoop-client-runtime org.apache.hadoop:hadoop-common
    org.apache.parquet:* org.slf4j:* org.apache.logging.log4j:* org.xerial.snappy:snappy-java
    commons-logging:commons-logging com.github.luben:zstd-jni io.airlift:aircompressor commons-pool:commons-pool
    org.roaringbitmap:* com.google.code.findbugs:jsr305 javax.annotation:javax.annotation-api
    org.locationtech.jts:jts-core org.checkerframework:checker-qual
)

pom() {
    local exclusions="" e
    for e in "${EXCLUDED[@]}"; do
        exclusions+="<exclusion><groupId>${e%%:*}</groupId><artifactId>${e#*:}</artifactId></exclusion>"
    done
    dep() {
        printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version>\n      <exclusions>%s</exclusions></dependency>\n' \
            "$1" "$2" "$3" "$exclusions"
    }
    cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakehouse.local</groupId><artifactId>spark-connectors</artifactId><version>1</version><packaging>pom</packaging>
  <repositories><repository><id>central</id><url>$REPO</url></repository></repositories>
  <pluginRepositories><pluginRepository><id>central</id><url>$REPO</url></pluginRepository></pluginRepositories>
  <dependencies>
$(dep io.delta "$DELTA_ARTIFACT" "$DELTA_VERSION")
$([ -z "$ICEBERG_ARTIFACT" ] || dep org.apache.iceberg "$ICEBERG_ARTIFACT" "$ICEBERG_VERSION")
$(dep org.apache.hadoop hadoop-aws "$HADOOP_VERSION")
$(dep org.postgresql postgresql "$POSTGRES_JDBC_VERSION")
$(dep org.xerial sqlite-jdbc "$SQLITE_JDBC_VERSION")
  </dependencies>
</project>
EOF
}

installed() { [ "$(cat "$INSTALL/.lakehouse-install" 2>/dev/null)" = "$TAG" ]; }

install() {
    if installed; then echo "$INSTALL"; return 0; fi
    command -v mvn >/dev/null || die "Maven (mvn) is not installed: apt-get install maven"
    mkdir -p "$ROOT"
    exec 9>"$ROOT/.lock"
    flock 9  # two test workers (or make and a test) installing at once: the second finds it done
    if installed; then echo "$INSTALL"; return 0; fi
    local t0=$SECONDS tmp="$INSTALL.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp/jars"
    pom >"$tmp/pom.xml"
    log "resolving the connectors for Spark $SPARK_VERSION (hadoop-aws $HADOOP_VERSION) from $REPO (~700 MB, once)"
    # a throwaway local repository: only the copied jars are kept
    if ! mvn -B -C -f "$tmp/pom.xml" -Dmaven.repo.local="$tmp/m2" \
        org.apache.maven.plugins:maven-dependency-plugin:3.9.0:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/jars" >"$tmp/maven.log" 2>&1; then
        local why
        why=$(grep -E '\[ERROR\]|Could not|[Cc]hecksum' "$tmp/maven.log" | head -n 12)
        rm -rf "$tmp"
        die "Maven could not resolve the connectors: ${why:-see the output of mvn}"
    fi
    local jar
    for jar in "$DELTA_ARTIFACT-$DELTA_VERSION.jar" ${ICEBERG_ARTIFACT:+"$ICEBERG_ARTIFACT-$ICEBERG_VERSION.jar"} \
        "hadoop-aws-$HADOOP_VERSION.jar" "postgresql-$POSTGRES_JDBC_VERSION.jar" "sqlite-jdbc-$SQLITE_JDBC_VERSION.jar"; do
        [ -f "$tmp/jars/$jar" ] || { rm -rf "$tmp"; die "$jar is missing from Maven's resolution"; }
    done
    (cd "$tmp/jars" && sha256sum -- *.jar >SHA256SUMS)
    echo "$TAG" >"$tmp/jars/.lakehouse-install"
    rm -rf "$INSTALL" && mv "$tmp/jars" "$INSTALL" && rm -rf "$tmp"
    log "$(ls "$INSTALL"/*.jar | wc -l) jars ($(du -sh "$INSTALL" | cut -f1)) in $INSTALL, resolved in $((SECONDS - t0)) s"
    echo "$INSTALL"
}

case "${1:-}" in
    install) install ;;
    path) installed && echo "$INSTALL" ;;
    pom) pom ;;
    *)
        sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
