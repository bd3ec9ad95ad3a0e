# Nimbus: clustered OpenFlow 1.3 controller.
GO        ?= go
BIN       := bin
# Count-based: a duration-based -fuzztime trips a Go 1.26 fuzz-coordinator
# race (golang/go#75804) that fails a target with "context deadline
# exceeded" at the deadline, without any crasher.
FUZZTIME  ?= 30000x
# Integration tests need real OVS, Mininet and etcd; `make test` installs
# and starts them.
E2E_ENV   := NIMBUS_E2E=1

.PHONY: all build run test unit e2e fuzz deps docs docs-check bench bench-l3 bench-fip bench-snat lab lab-down lab-fabric vet clean neutron-record

all: build

build:
	$(GO) build -o $(BIN)/controller ./cmd/controller
	$(GO) build -o $(BIN)/ofbench ./cmd/ofbench

# Start the controller on its defaults: OpenFlow on :6653, API on :9696.
run: build
	$(BIN)/controller serve

deps:
	scripts/deps.sh
	scripts/ovs-start.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# The whole suite: unit tests, real-OVS and Mininet end-to-end tests, and
# a bounded run of every fuzz target.
test: deps build vet docs-check
	$(E2E_ENV) $(GO) test -count=1 -timeout 25m ./...
	$(MAKE) fuzz

unit:
	$(GO) test -count=1 ./...

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

docs:
	$(GO) run ./cmd/pipelinedoc > docs/pipeline.md

docs-check:
	@$(GO) run ./cmd/pipelinedoc | diff -u docs/pipeline.md - || (echo "docs/pipeline.md is stale: run make docs"; exit 1)

bench: build
	scripts/bench-ofbench.sh

# L3 routing figures (docs/benchmarks.md): flows per hypervisor for 100
# routers (pure app), then routed vs L2 iperf3 throughput and router
# interface add -> first routed ping in the overlay lab. Not in make test.
bench-l3:
	$(GO) test -count=1 -run TestFlowsPerHypervisor -v ./app/l3router/
	$(E2E_ENV) NIMBUS_BENCH=1 $(GO) test -count=1 -timeout 20m -run 'TestL3Bench$$' -v ./test/e2e/

# Floating IP associate -> first ping from the internet (p50/p99), in the overlay lab with the external network.
bench-fip:
	NIMBUS_E2E=1 NIMBUS_BENCH=1 $(GO) test -count=1 -timeout 20m -v -run 'TestFloatingIPBench$$' ./test/e2e/

# Distributed SNAT against one Linux network node (iptables MASQUERADE),
# three hypervisors at once (docs/benchmarks.md).
bench-snat:
	NIMBUS_E2E=1 NIMBUS_BENCH=1 $(GO) test -count=1 -timeout 10m -v -run 'TestSNATBench$$' ./test/e2e/

# A 3-hypervisor GRE overlay lab with a VLAN physical network and an external network with an "internet" namespace (namespaces, one OVS each); `make lab-down` removes it.
lab:
	test/mininet/overlay/lab.sh up

# A Mininet fabric (TOPO=tree,2,2 | ring,4 | linear,K ...) of userspace OVS
# switches on a running controller (CONTROLLER, default 127.0.0.1:6653).
# It prints the hosts, their switch ports (bind Neutron ports to them with
# binding:profile port_name) and netns names, and holds the lab until
# stdin closes (Ctrl-D); then it removes everything it made.
TOPO       ?= tree,2,2
CONTROLLER ?= 127.0.0.1:6653
lab-fabric:
	/usr/bin/python3 test/mininet/fabric.py --topo $(TOPO) --controller $(CONTROLLER)

lab-down:
	test/mininet/overlay/lab.sh down

clean:
	rm -rf $(BIN)

# Re-record the Neutron differential suite (northbound/testdata/neutron/)
# from a real Neutron 21 server on loopback; installs neutron-server if
# missing. `make test` replays the committed recording without it.
neutron-record:
	GO=$(GO) test/neutron/record.sh
