# warmpool: every check CI runs is behind `make test`.
#
#   make test    fmt, clippy, unit + end-to-end tests, moto-backed adapter tests, the
#                demo's done-criterion, cfn-lint
#   make demo    the local demo (the whole flow on the in-memory cloud)
#   make build   release Lambda binaries for arm64 (cargo-lambda; not run in CI)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PYTHON ?= python3
CARGO ?= cargo

.PHONY: test fmt-check clippy unit fault-matrix moto-test demo-check lint-template demo build sam-validate clean-venv

test: fmt-check clippy unit fault-matrix moto-test demo-check lint-template
	@echo "make test: all checks passed"
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit:
	$(CARGO) test --workspace -- --skip crash_point_matrix --skip races_ 2>&1 | tee target/test.log

# The crash-point matrix and the race runs, with the figures they print (matrix size,
# detach attempts per claim).
fault-matrix:
	$(CARGO) test -p warmpool-tests --test faults -- --show-output crash_point_matrix races_ 2>&1 \
		| tee -a target/test.log | grep -E "^(test |crash-point matrix|races:|test result)"

# The SDK adapters on the wire: scripts/with-moto.sh starts the project's moto server
# on a free 127.0.0.1 port, runs the tests, and stops it.
moto-test: $(VENV)/.installed
	scripts/with-moto.sh $(VENV) target/moto-state.json \
		$(CARGO) test -p warmpool-tests --features moto --test moto 2>&1 | tee -a target/test.log

# The issue's done-criterion, run as the README shows it.
demo-check:
	$(CARGO) run -q -p warmpool-cli -- demo --users 30 --pool 10 --json > target/demo.json
	$(PYTHON) scripts/check_demo.py target/demo.json --users 30 --min-warm 10

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	@echo "cfn-lint template.yaml: ok"

demo:
	$(CARGO) run -p warmpool-cli -- demo

# Needs cargo-lambda, the aarch64-unknown-linux-gnu target and gcc-aarch64-linux-gnu;
# the compiler is plain cargo (Cargo metadata), so zig is not needed.
build:
	$(CARGO) lambda build --release --arm64

# Optional (not in CI): the SAM CLI's own validation and lint.
sam-validate:
	sam validate --lint

clean-venv:
	rm -rf $(VENV)
