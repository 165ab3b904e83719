# warmpool: every check CI runs is behind `make test`.
#
#   make test    fmt, clippy, the crate layering, unit + end-to-end tests, moto-backed
#                adapter tests, the demo's and the simulator's done-criteria, cfn-lint,
#                checkov, SAM's expansion adds no IAM (scripts/check_expanded_iam.py), and
#                the release bootstraps' glibc and architecture (check-artifacts)
#   make bench   criterion benchmarks (flow CPU per signup, a 10,000-signup burst, cold
#                start and peak RSS of each release Lambda binary); not run in CI
#   make demo    the local demo (the whole flow on the in-memory cloud)
#   make build   the five functions' arm64 bootstraps, checked (cargo-lambda; not run in CI)

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
# Reports go where cargo puts its output (CARGO_TARGET_DIR, a `build.target-dir` in
# .cargo/config.toml, or ./target), so a shared cache works (`cargo clean` removes them).
TARGET_DIR := $(shell $(CARGO) metadata --format-version 1 --no-deps | $(PYTHON) -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
REPORTS := $(TARGET_DIR)/reports
# The five Lambda functions: their packages are warmpool-NAME, their binaries NAME.
FUNCTIONS := signup lifecycle command-status reconcile pool-sizer
FUNCTION_PACKAGES := $(addprefix -p warmpool-,$(FUNCTIONS))

.PHONY: test fmt-check clippy layers bins unit fault-matrix moto-test demo-check recovery-check simulate-check lint-template check-artifacts demo bench build sam-validate mutants clean-venv reports

test: fmt-check clippy layers bins unit fault-matrix moto-test demo-check recovery-check simulate-check lint-template check-artifacts
	@echo "make test: all checks passed"
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' $(REPORTS)/test.log

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

unit: | reports
	$(CARGO) test $(TEST_SET) -- --skip crash_point_matrix --skip races_ --skip moto_ 2>&1 | tee $(REPORTS)/test.log

# The crash-point matrix and the race runs, with the figures they print (matrix size,
# detach attempts per claim).
fault-matrix: | reports
	$(CARGO) test $(TEST_SET) --test faults -- --show-output crash_point_matrix races_ 2>&1 \
		| tee -a $(REPORTS)/test.log | grep -E "^(test |crash-point matrix|races:|test result)"

# The SDK adapters on the wire: scripts/with-moto.sh starts the project's moto server
# on a free 127.0.0.1 port, runs the tests, and stops it.
moto-test: $(VENV)/.installed | reports
	scripts/with-moto.sh $(VENV) $(REPORTS)/moto-state.json \
		$(CARGO) test $(TEST_SET) --test moto 2>&1 | tee -a $(REPORTS)/test.log

# The issue's done-criterion, run as the README shows it.
demo-check: | reports
	$(CARGO) run -q -p warmpool-cli -- demo --users 30 --pool 10 --json > $(REPORTS)/demo.json
	$(PYTHON) scripts/check_demo.py $(REPORTS)/demo.json --users 30 --min-warm 10

# Issue 10's done-criterion: under the standard fault mix, seeds 1 to 10, every user ready
# or failed with a reason, p95 <= 900 s and max <= 1,800 s of simulated time (the same on
# every machine), no host sent two inits, nothing outside a group. A second each. Without
# the account's rate limits: the criterion is about the faults (their 10% of throttled
# calls included); 200 signups at once against the model's assumed Auto Scaling rate
# (40/10 a second) dead-letter some signups, which docs/scaling.md reports.
RECOVERY_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
recovery-check: | reports
	for s in $(RECOVERY_SEEDS); do \
		$(CARGO) run -q -p warmpool-cli -- demo --users 200 --pool 50 --crash-rate 0.1 --drop-events 0.1 \
			--duplicate-events 0.1 --throttle-rate 0.1 --init-failure-rate 0.1 --no-api-limits --seed $$s --json \
			> $(REPORTS)/recovery-$$s.json; \
	done
	$(PYTHON) scripts/check_recovery.py $(foreach s,$(RECOVERY_SEEDS),$(REPORTS)/recovery-$(s).json)

# Issue 5's done-criterion: on the diurnal day the adaptive pool reaches 99% warm hits
# with fewer idle instance-hours than the smallest static pool that does. A debug
# build (a few minutes of simulation) is quicker here than a release build from scratch.
simulate-check: | reports
	$(CARGO) run -q -p warmpool-cli -- simulate --trace diurnal --pool adaptive:0.99 --compare-static --group-quota 2000 --json \
		> $(REPORTS)/simulate.json
	$(CARGO) run -q -p warmpool-cli -- simulate --trace diurnal --pool adaptive:0.99 --warm-tier stopped --group-quota 2000 \
		--json > $(REPORTS)/simulate-two-tier.json
	$(PYTHON) scripts/check_simulate.py $(REPORTS)/simulate.json --target 0.99 --two-tier $(REPORTS)/simulate-two-tier.json

reports:
	@mkdir -p $(REPORTS)

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

# The five functions' arm64 bootstraps, as `sam build` makes them (not the CLI), checked
# as check-artifacts checks the machine's own. Needs cargo-lambda (PyPI), the
# aarch64-unknown-linux-gnu target and gcc-aarch64-linux-gnu (aws-lc-sys compiles C);
# the compiler is plain cargo (Cargo metadata), so zig is not needed.
build:
	$(CARGO) lambda build --release --arm64 $(FUNCTION_PACKAGES)
	$(PYTHON) scripts/check_artifacts.py --arch aarch64 $(foreach f,$(FUNCTIONS),$(TARGET_DIR)/lambda/$(f)/bootstrap)

# Lambda's provided.al2023 has glibc 2.34 and this build host may have a newer one: a
# bootstrap that asks for a newer symbol fails at its first cold start. The functions'
# release binaries for this machine (the same dependencies, the same glibc question)
# are checked in CI; the arm64 bootstraps of the last `make build` too, where there are any.
check-artifacts:
	$(CARGO) build --release $(FUNCTION_PACKAGES)
	$(PYTHON) scripts/check_artifacts.py --self-test $(foreach f,$(FUNCTIONS),$(TARGET_DIR)/release/$(f))
	@if ls $(TARGET_DIR)/lambda/*/bootstrap >/dev/null 2>&1; then \
		echo "the arm64 bootstraps of the last make build:"; \
		$(PYTHON) scripts/check_artifacts.py --arch aarch64 $(foreach f,$(FUNCTIONS),$(TARGET_DIR)/lambda/$(f)/bootstrap); \
	fi

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
		--timeout 300 --output $(TARGET_DIR)/mutation $(MUTANTS_ARGS)
	$(PYTHON) scripts/mutants_score.py $(TARGET_DIR)/mutation/mutants.out

# Optional (not in CI): the SAM CLI's own validation and lint.
sam-validate:
	sam validate --lint

clean-venv:
	rm -rf $(VENV)
