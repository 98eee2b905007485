# Switchyard developer and CI entry points.
#
#   make up      install if missing and start RabbitMQ, Kafka and PostgreSQL
#                (scripts/up.sh), write .work/env; a server these scripts did
#                not start that already answers on a port is used, never stopped
#   make down    stop what scripts/up.sh started (scripts/down.sh)
#   make up CLUSTER=3    also three-node Kafka and RabbitMQ clusters beside them
#                (scripts/cluster.sh, other ports, .work/cluster/env)
#   make down CLUSTER=3  stop the clusters only
#   make faults-cluster  fault scenarios on the clusters (leader kills)
#   make test    make up, then go vet and the whole test suite against the real brokers
#                (the root module, then the nested bench module, bench/go.mod)
#   make run     run the example service
#
# The test command is $(GO) test $(GOTEST_FLAGS) $(GOTEST_EXTRA) $(PKGS):
#   make test GOTEST_EXTRA=-v
#   make test GOTEST_EXTRA='-v -run TestKafka' PKGS=./adapters/kafka/...
#   make up SERVICES=kafka           start only Kafka
#
# A separate set of servers beside the default one (see scripts/up.sh):
#   make test SWITCHYARD_WORK=/tmp/sy SWITCHYARD_AMQP_PORT=5682 \
#     SWITCHYARD_KAFKA_PORT=9192 SWITCHYARD_POSTGRES_PORT=5442

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

# Go may live outside PATH in a fresh root shell (CI).
export PATH := $(PATH):/usr/local/go/bin

GO           ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 30m
GOTEST_EXTRA ?=
PKGS         ?= ./...
SERVICES     ?=
# CLUSTER=3: make up also starts the three-node clusters, make down stops them.
CLUSTER      ?=
ifneq ($(filter-out 3,$(CLUSTER)),)
$(error CLUSTER=$(CLUSTER): only CLUSTER=3 (three-node clusters, scripts/cluster.sh) is supported)
endif
# The nested module holding the benchmark tool and the tests that need
# watermill-kafka, watermill-amqp and Sarama, kept out of the library's go.mod.
BENCH_MODULE := bench
# With the default PKGS, make test and make vet cover the bench module too;
# with PKGS naming packages they cover just those.
WITH_BENCH_MODULE := $(filter ./...,$(PKGS))
# The environment scripts/up.sh writes: in $SWITCHYARD_WORK when that is set.
ENV_FILE     := $(or $(SWITCHYARD_WORK),.work)/env

.PHONY: up down test vet run

up:
	scripts/up.sh $(SERVICES)
ifneq ($(CLUSTER),)
	scripts/cluster.sh up
endif

down:
ifneq ($(CLUSTER),)
	scripts/cluster.sh down
else
	scripts/down.sh $(SERVICES)
endif

vet:
	$(GO) vet ./...
	cd $(BENCH_MODULE) && $(GO) vet ./...

test: up
	. $(ENV_FILE) && $(GO) vet $(PKGS) && $(GO) test $(GOTEST_FLAGS) $(GOTEST_EXTRA) $(PKGS)
ifneq ($(WITH_BENCH_MODULE),)
	. $(ENV_FILE) && cd $(BENCH_MODULE) && $(GO) vet ./... && $(GO) test $(GOTEST_FLAGS) $(GOTEST_EXTRA) ./...
endif

run:
	$(GO) run ./examples/orders

# make bench: Switchyard against bare Watermill and the raw clients on every
# broker, same run, reported as ratios; rewrites docs/benchmarks.md. Not part
# of make test. Takes under ~10 minutes on 2 cores. Flags: BENCH_FLAGS='--runs 1'.
# The tool is in the nested bench module (bench/cmd/switchyard-bench).
BENCH_FLAGS ?=

.PHONY: bench
bench: up
	. $(ENV_FILE) && cd $(BENCH_MODULE) && $(GO) run ./cmd/switchyard-bench --brokers memory,amqp,kafka --write-docs ../docs/benchmarks.md $(BENCH_FLAGS)

# make faults: fault scenarios against the real brokers (kill -9 of a
# consumer, RabbitMQ and Kafka restarts mid-stream, a consumer leaving its
# group, members joining and leaving under load and a rolling restart of
# the members on Kafka and RabbitMQ, a bad-input corpus); one result line
# per scenario with lost and duplicates counted, non-zero exit if anything
# was lost or a key was handled on two members at once. It restarts the
# brokers. See cmd/switchyard-faults.
#   make faults FAULTS_FLAGS='-run kill9,badinput -v'
FAULTS_FLAGS ?=

.PHONY: faults
faults: up
	. $(ENV_FILE) && $(GO) run ./cmd/switchyard-faults $(FAULTS_FLAGS)

# make faults-cluster: the cluster scenarios (cmd/switchyard-faults -cluster):
# SIGKILL of the Kafka partition leader and of RabbitMQ quorum queue leaders
# mid-stream, a rolling restart of the Kafka brokers. It starts the
# three-node clusters (scripts/cluster.sh) and kills their nodes only,
# never the single-node servers. Stop the clusters after: make down CLUSTER=3.
.PHONY: faults-cluster
faults-cluster:
	scripts/cluster.sh up
	. $(or $(SWITCHYARD_WORK),.work)/cluster/env && $(GO) run ./cmd/switchyard-faults -cluster $(FAULTS_FLAGS)

# make fuzz: a short native-fuzzing run of the envelope decoder, payload
# decoding, structured-mode CloudEvents, inbound mappings, config parsing
# and AMQP header conversion (FUZZTIME each). A count
# ("50000x") rather than a duration: a duration that ends while a worker is
# busy on a loaded machine makes go test report "context deadline exceeded"
# as a failure with no failing input.
FUZZTIME ?= 50000x

.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadEnvelope$$' -fuzztime $(FUZZTIME) ./pkg/event
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/event
	$(GO) test -run '^$$' -fuzz '^FuzzFromStructured$$' -fuzztime $(FUZZTIME) ./pkg/event
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./pkg/inbound
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzHeaderString$$' -fuzztime $(FUZZTIME) ./adapters/amqp
