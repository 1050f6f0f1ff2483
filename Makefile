# tokengate developer targets. `make check` is what CI runs (through .ci/run).
.PHONY: build test lint check demo clean bench

# Everything on a fresh Debian clone: install and start what the tests need (.ci/test-services),
# the npm packages (npm ci, only when node_modules is missing or does not match package.json;
# never through a linked node_modules, which others share), the type check, then the whole suite.
check:
	.ci/test-services
	@if [ ! -e node_modules ]; then npm ci --no-audit --no-fund; \
	elif ! npm ls --depth=0 >/dev/null 2>&1; then \
	  if [ -L node_modules ]; then echo "node_modules is a link and does not match package.json: run npm ci where it points" >&2; exit 1; fi; \
	  npm ci --no-audit --no-fund; \
	fi
	npm run lint
	npm test

build:
	npm run build

test:
	npm test

lint:
	npm run lint

demo: build
	node bin/tokengate.js demo

clean:
	rm -rf dist coverage

# Benchmark: tokengate vs direct and pgbouncer (docs/performance.md). Not a test: it prints figures.
#   make bench QUICK=1          one 5 s round (development)
#   make bench SCENARIOS=1,3    a subset;  ROUNDS=n DURATION=s override the defaults (3 x 15 s)
#   INSTRUCTIONS=1 counts each proxy's instructions per transaction under valgrind instead (SCENARIOS=1-5)
#   GATEWAY_NODE_FLAGS="--trace-deopt" passes V8 flags to the gateway processes (their logs are kept with KEEP=1)
#   PROFILE=1 also profiles the gateway (node --cpu-prof; PROFILES=name,... picks workloads);  KEEP=1 keeps the servers' logs and configs
#   BASELINE=<git ref> also builds that revision (temporary worktree under .tmp/bench/baseline) and runs it as the row
#     tokengate-baseline next to tokengate in every scenario, in the same rounds (with INSTRUCTIONS=1 too)
BENCH_OUT := .tmp/bench/build
bench: build
	npx tsc --outDir $(BENCH_OUT) --rootDir . --target ES2022 --module commonjs --moduleResolution node10 \
		--strict --esModuleInterop --skipLibCheck --types node --sourceMap test/bench/main.ts test/bench/profile.ts
	QUICK="$(QUICK)" SCENARIOS="$(SCENARIOS)" ROUNDS="$(ROUNDS)" DURATION="$(DURATION)" PROFILE="$(PROFILE)" PROFILES="$(PROFILES)" KEEP="$(KEEP)" INSTRUCTIONS="$(INSTRUCTIONS)" GATEWAY_NODE_FLAGS="$(GATEWAY_NODE_FLAGS)" BASELINE="$(BASELINE)" \
		node --enable-source-maps $(BENCH_OUT)/test/bench/main.js
