# The two commands in README.md. Both install what they need first.
.PHONY: cluster test deps

deps:
	./scripts/install-deps.sh

# Build and start a single-node cluster (server + local node, embedded store).
cluster: deps
	cargo build --release -p skiff
	./target/release/skiff server $(SKIFF_ARGS)

# Every test: unit, integration, conformance against SQLite and a real etcd.
test: deps
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi
