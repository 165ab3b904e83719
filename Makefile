# warmpool: every check CI runs is behind `make test`.
#
#   make test    fmt, clippy, the crate layering, unit + end-to-end tests, moto-backed
#                adapter tests, the demo's and the simulator's done-criteria, cfn-lint,
#                checkov, SAM's expansion adds no IAM (scripts/check_expanded_iam.py)
#   make bench   criterion benchmarks (flow CPU per signup, a 10,000-signup burst, cold
#                start and peak RSS of each release Lambda binary); not run in CI
#   make demo    the local demo (the whole flow on the in-memory cloud)
#   make build   release Lambda binaries for arm64 (cargo-lambda; not run in CI)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PYTHON ?= python3
CARGO ?= cargo
# Every test run builds the same set (the whole workspace, every feature): cargo unifies
# features over the packages it builds, so a `-p` run would rebuild the SDK crates with
# another feature set. The moto tests are built with the rest and run on their own, with
# the server (`--skip moto_` keeps them out of the unit run).
TEST_SET := --workspace --all-features

.PHONY: test fmt-check clippy layers bins unit fault-matrix moto-test demo-check recovery-check simulate-check lint-template demo bench build sam-validate mutants clean-venv

test: fmt-check clippy layers bins unit fault-matrix moto-test demo-check recovery-check simulate-check lint-template
	@echo "make test: all checks passed"
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# The crate graph is the architecture: core has no SDK or runtime, no function links the
# simulator, the simulator builds no SDK, and no file under shared/ is over 600 lines.
layers:
	scripts/check_layers.sh

# The five function binaries (for the host: `make build` cross-compiles them for Lambda).
# Tests do not lay out a binary's `main`, so only a build finds a runtime future too deep
# for the compiler's query depth.
bins:
	$(CARGO) build --workspace --bins

unit:
	$(CARGO) test $(TEST_SET) -- --skip crash_point_matrix --skip races_ --skip moto_ 2>&1 | tee target/test.log

# The crash-point matrix and the race runs, with the figures they print (matrix size,
# detach attempts per claim).
fault-matrix:
	$(CARGO) test $(TEST_SET) --test faults -- --show-output crash_point_matrix races_ 2>&1 \
		| tee -a target/test.log | grep -E "^(test |crash-point matrix|races:|test result)"

# The SDK adapters on the wire: scripts/with-moto.sh starts the project's moto server
# on a free 127.0.0.1 port, runs the tests, and stops it.
moto-test: $(VENV)/.installed
	scripts/with-moto.sh $(VENV) target/moto-state.json \
		$(CARGO) test $(TEST_SET) --test moto 2>&1 | tee -a target/test.log

# The issue's done-criterion, run as the README shows it.
demo-check:
	$(CARGO) run -q -p warmpool-cli -- demo --users 30 --pool 10 --json > target/demo.json
	$(PYTHON) scripts/check_demo.py target/demo.json --users 30 --min-warm 10

# Issue 10's done-criterion: under the standard fault mix, seeds 1 to 10, every user ready
# or failed with a reason, p95 <= 900 s and max <= 1,800 s of simulated time (the same on
# every machine), no host sent two inits, nothing outside a group. A second each.
RECOVERY_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
recovery-check:
	for s in $(RECOVERY_SEEDS); do \
		$(CARGO) run -q -p warmpool-cli -- demo --users 200 --pool 50 --crash-rate 0.1 --drop-events 0.1 \
			--duplicate-events 0.1 --throttle-rate 0.1 --init-failure-rate 0.1 --seed $$s --json \
			> target/recovery-$$s.json; \
	done
	$(PYTHON) scripts/check_recovery.py $(foreach s,$(RECOVERY_SEEDS),target/recovery-$(s).json)

# Issue 5's done-criterion: on the diurnal day the adaptive pool reaches 99% warm hits
# with fewer idle instance-hours than the smallest static pool that does. A debug
# build (a few minutes of simulation) is quicker here than a release build from scratch.
simulate-check:
	$(CARGO) run -q -p warmpool-cli -- simulate --trace diurnal --pool adaptive:0.99 --compare-static --group-quota 2000 --json \
		> target/simulate.json
	$(CARGO) run -q -p warmpool-cli -- simulate --trace diurnal --pool adaptive:0.99 --warm-tier stopped --group-quota 2000 \
		--json > target/simulate-two-tier.json
	$(PYTHON) scripts/check_simulate.py target/simulate.json --target 0.99 --two-tier target/simulate-two-tier.json

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	@echo "cfn-lint template.yaml: ok"
	@# Zero failed checks; each check the design does not follow is skipped in the
	@# resource's own Metadata (checkov: skip), with its reason.
	$(VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	@echo "checkov template.yaml: ok"
	@# SAM's expansion (aws-sam-translator, offline) adds no role or policy of its own.
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/python scripts/check_expanded_iam.py template.yaml --self-test

demo:
	$(CARGO) run -p warmpool-cli -- demo

# Benchmarks print figures; they never fail on a timing. The cold-start bench builds
# the release Lambda binaries for this machine first.
bench:
	$(CARGO) bench -p warmpool-cli

# Needs cargo-lambda, the aarch64-unknown-linux-gnu target and gcc-aarch64-linux-gnu;
# the compiler is plain cargo (Cargo metadata), so zig is not needed.
build:
	$(CARGO) lambda build --release --arm64

# Mutation testing of the flow (shared/core/src/flow), not in CI: each of its ~670 mutants
# rebuilds core and the tests that exercise it (the `mutants` profile: no debug info, a
# little optimisation) and runs them: 5-45 s apiece, about four hours on two cores.
# FILES narrows it (FILES="-f shared/core/src/flow/outside.rs"); MUTANTS_ARGS adds
# options, e.g. "--iterate" to skip the mutants an earlier run already saw caught, or
# "--shard 1/4". Needs `cargo install cargo-mutants`. Results in target/mutation/mutants.out;
# scripts/mutants_score.py prints the score and the survivors.
FILES ?= -f 'shared/core/src/flow/*.rs'
MUTANTS_ARGS ?=
mutants:
	mkdir -p target
	cargo mutants $(FILES) --profile mutants --test-package warmpool-core --test-package warmpool-tests \
		--test-package warmpool-signup --test-package warmpool-lifecycle --test-package warmpool-command-status \
		--test-package warmpool-reconcile --test-package warmpool-pool-sizer \
		--timeout 300 --output target/mutation $(MUTANTS_ARGS)
	$(PYTHON) scripts/mutants_score.py target/mutation/mutants.out

# Optional (not in CI): the SAM CLI's own validation and lint.
sam-validate:
	sam validate --lint

clean-venv:
	rm -rf $(VENV)
