# The two quick-start commands: `make run` and `make test`. Everything else is a helper.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
MAKEFLAGS  += --no-print-directory
PYTHON     ?= /usr/bin/python3
RUN_ARGS   ?=

.PHONY: all build build-tests run test test-unit test-e2e test-asan fuzz bench deps deps-test clean format

all: build

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

# The test packages (cmocka) may have arrived after the build directory was configured: look again.
build-tests: deps-test $(BUILD)/Makefile
	@cmake -S . -B $(BUILD) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds and starts the server on its embedded defaults (./data, 127.0.0.1:8080).
run: build
	@scripts/run.sh $(BUILD)/conferenced $(RUN_ARGS)

# Builds and runs every test: unit tests (ctest) and end-to-end tests against the real binary.
test: build-tests
	@cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)
	@CONFERENCED_BIN=$(abspath $(BUILD)/conferenced) $(PYTHON) -m pytest -q tests/e2e

test-unit: build-tests
	@cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)

test-e2e: build-tests
	@CONFERENCED_BIN=$(abspath $(BUILD)/conferenced) $(PYTHON) -m pytest -q tests/e2e

# The unit and end-to-end tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:suppressions=$(CURDIR)/tests/asan.supp ctest --output-on-failure --no-tests=error -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:suppressions=$(CURDIR)/tests/asan.supp CONFERENCED_BIN=$(abspath $(ASAN_BUILD)/conferenced) \
		$(PYTHON) -m pytest -q tests/e2e

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 30).
fuzz: deps-test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@scripts/fuzz.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-30}

bench: build
	@scripts/install-deps.sh bench
	@bench/api $(BUILD)/conferenced

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
