# tokengate developer targets. `make test` is what CI runs (through .ci/run).
.PHONY: build test lint demo clean

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
