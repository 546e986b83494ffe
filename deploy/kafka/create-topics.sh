#!/bin/sh
# Creates phiwatch's Kafka topics. Usage: BOOTSTRAP=broker:9092 deploy/kafka/create-topics.sh
#
# phiwatch.events: canonical audit events from the agents, keyed by user, so one user's
#   events stay in one partition and in order. Partitions bound how many engines of one
#   group can share the work; 12 allows growth. 7 days of retention lets an engine that
#   was down for a week catch up from its committed offsets.
# phiwatch.alerts: alerts for SIEMs and case tools, keyed by user; 90 days.
set -eu
BOOTSTRAP=${BOOTSTRAP:-127.0.0.1:9092}
RF=${REPLICATION:-3}
if command -v kafka-topics.sh >/dev/null 2>&1; then
    kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic phiwatch.events \
        --partitions 12 --replication-factor "$RF" \
        --config retention.ms=604800000 --config min.insync.replicas=2 --config compression.type=producer
    kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic phiwatch.alerts \
        --partitions 3 --replication-factor "$RF" \
        --config retention.ms=7776000000 --config min.insync.replicas=2
elif command -v tansu >/dev/null 2>&1; then
    # Test and single-node setups (tansu has no replication settings).
    tansu topic create phiwatch.events --partitions 12 --broker "tcp://$BOOTSTRAP"
    tansu topic create phiwatch.alerts --partitions 3 --broker "tcp://$BOOTSTRAP"
else
    echo "neither kafka-topics.sh nor tansu is on PATH" >&2
    exit 1
fi
