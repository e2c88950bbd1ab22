# unik: the commands the README names.  Everything runs inside .venv, created on demand.
#
#   make deps          install the Debian packages of .ci/apt-packages that are missing (root),
#                      or say which are and how to install them
#   make demo          build examples/hello for the unix target and run it
#   make test          install what the tests use (make deps), then the whole test suite
#   make test-kernel   boot examples/hello on a kernel built from source (slow the first time)
#   make test-xen      a real Xen 4.17 under QEMU TCG runs examples/hello and examples/http
#   make lint          ruff and mypy (the sources, tests/ and bench/)
#   make bench         benchmarks; results in bench/results/*.json
#   make wheels        every distribution's wheel into wheelhouse/, checked by auditwheel
#   make test-pythons  core and unix tests on every CPython 3.10-3.13 found

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Every distribution of the repository, in dependency order.
DISTS  := core plugins/libs/fdio plugins/unix plugins/libs/tcpip plugins/libs/fat plugins/libs/vmguest plugins/libs/vmimage plugins/virtio plugins/xen plugins/solo5 plugins/libs/entropy plugins/libs/tls
PYTEST_ARGS ?=

.PHONY: all deps deps-venv venv demo test lint bench wheels test-pythons clean fuzz-fat test-kernel test-xen fuzz docs-graph

all: test

# deps-venv comes first (order-only): on a fresh machine it installs python3 itself, and
# $(PYTHON) is expanded only when this recipe starts, after it.
# The C sources too: an editable install compiles its extensions in place once, so after a pull
# or rebase that changes one, the old .so would keep running until this reinstalls (and rebuilds).
C_SOURCES := $(shell find $(foreach d,$(DISTS),$(d)/src) \( -name '*.c' -o -name '*.h' -o -name '*.S' \) 2>/dev/null)

$(VENV)/.installed: requirements-dev.txt $(foreach d,$(DISTS),$(d)/pyproject.toml) $(wildcard $(foreach d,$(DISTS),$(d)/setup.py)) $(C_SOURCES) | deps-venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The core was the distribution `unik` before it became `unik-core`: drop an old install
	# (its editable metadata in core/src would still show `unik` as installed).
	$(BIN)/python -m pip uninstall -q -y unik 2>/dev/null || true
	rm -rf core/src/unik.egg-info
	$(BIN)/python -m pip install -q -r requirements-dev.txt $(foreach d,$(DISTS),-e $(d))
	touch $@

venv: $(VENV)/.installed

# The Debian packages of .ci/apt-packages (the one list): as root, apt-get update and install
# run only when one is missing; not root, one message says which and the command.  The @venv
# ones first (deps-venv, which make venv also runs), then the rest: each is reported once.
deps: deps-venv
	@tools/apt-deps --rest

# Only what creating .venv needs (@venv in .ci/apt-packages): python3, its venv and headers, gcc.
deps-venv:
	@tools/apt-deps --venv

demo: venv
	cd examples/hello && ../../$(BIN)/unik configure -t unix && ../../$(BIN)/unik build && ../../$(BIN)/unik run

# The slow suites have their own targets (below); .ci/run runs them after this one.
SLOW_SUITES := tests/xen/test_xen_nested.py tests/virtio/test_source_kernel.py

test: deps venv
	$(BIN)/python -m pytest -n 2 $(foreach t,$(SLOW_SUITES),--ignore=$(t)) $(PYTEST_ARGS) tests

# examples/hello on a kernel built from source for its plan (--kernel source): minutes the
# first time (cached in ~/.cache/unik/kernels/source); `make test` leaves it out.
test-kernel: deps venv
	UNIK_TEST_KERNEL_BUILD=1 $(BIN)/python -m pytest -p no:cacheprovider -s $(PYTEST_ARGS) tests/virtio/test_source_kernel.py

# Xen 4.17 and a Debian dom0 booted under QEMU TCG; dom0 runs the xen target's examples/hello
# (PVH and PV), examples/kv (FAT on a Xen disk), examples/http (PVH, on a bridge) with xl
# create, and `unik run -t xen` itself.  About 2.5 minutes here;
# Debian's packages are fetched once into ~/.cache/unik/xen.  `make test` leaves it out.
test-xen: deps venv
	UNIK_TEST_XEN=1 $(BIN)/python -m pytest -p no:cacheprovider -s $(PYTEST_ARGS) tests/xen/test_xen_nested.py

# mypy --strict covers tests/ too, one directory at a time: a suite imports its support modules
# (fat_support, tls_support, kernel_support...) by bare name from its own directory, where pytest
# puts them on sys.path, and every directory has a conftest.py.
MYPY_SRC = $$(echo core/src plugins/*/src plugins/libs/*/src | tr ' ' :)
TYPED_TEST_DIRS = $(wildcard tests/*/)
# bench/ too, in one run: its scripts import each other by bare name (bench/ is sys.path[0] when one
# runs), and the support modules they put on sys.path themselves: the test suites' served_support,
# kernel_support (tests/tcpip) and xen_nested (tests/xen), and examples/http's http_app.  bench/
# comes first, so that `import hvt` is bench/hvt.py, not the tests/hvt directory.
BENCH_MYPYPATH = bench:tests:tests/tcpip:tests/xen:examples/http/src

lint: venv
	$(BIN)/ruff check core plugins examples tests bench tools
	MYPYPATH=$(MYPY_SRC) $(BIN)/mypy
	MYPYPATH=$(MYPY_SRC):tests $(BIN)/mypy tests/*.py
	for d in $(TYPED_TEST_DIRS); do MYPYPATH=$(MYPY_SRC):tests:$$d:tools $(BIN)/mypy $$d || exit 1; done
	MYPYPATH=$(MYPY_SRC):$(BENCH_MYPYPATH) $(BIN)/mypy bench/*.py

bench: deps venv
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	for b in $(filter-out bench/benchlib.py,$(wildcard bench/*.py)); do $(BIN)/python $$b || exit 1; done

# Every distribution's wheel into $(WHEELHOUSE) (pure ones as built, platform ones checked by
# `auditwheel show` and repaired to a manylinux tag), plus the third-party wheels they need, so that
# `pip install --no-index --find-links wheelhouse unik-core unik-target-unix build` works offline.
WHEELHOUSE ?= wheelhouse
wheels: venv
	$(BIN)/python tools/wheelhouse.py --out $(WHEELHOUSE) $(DISTS)

# tests/core and tests/unix under every CPython 3.10-3.13 found, each in .venvs/pyX.Y.
test-pythons:
	$(PYTHON) tools/test_pythons.py -- $(PYTEST_ARGS)

# Longer FAT fuzzing than `make test` runs: hypothesis profile fat-fuzz (stateful model,
# hostile images, C/pure parity) and more crash points.
fuzz-fat: venv
	FAT_HYPOTHESIS_PROFILE=fat-fuzz FAT_CRASH_SEEDS=40 FAT_CRASH_CUTS=25 \
		$(BIN)/python -m pytest -n 2 -p no:cacheprovider --timeout 3600 $(PYTEST_ARGS) tests/fat

# Coverage-guided fuzzing (atheris) of unik-lib-tcpip's frame parsers and input path, of
# its DNS codec, then of its IPv6 parsers and input path, each for FUZZ_SECONDS (default 10
# minutes); the corpora grow in build/fuzz/.
FUZZ_SECONDS ?= 600
fuzz: venv
	$(BIN)/python -m pip install -q atheris
	$(BIN)/python tests/tcpip/fuzz_frames.py --seed build/fuzz/tcpip build/fuzz/tcpip \
		-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	$(BIN)/python tests/tcpip/fuzz_dns.py --seed build/fuzz/dns build/fuzz/dns \
		-max_total_time=$(FUZZ_SECONDS) -max_len=1500 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	$(BIN)/python tests/tcpip/fuzz_ipv6.py --seed build/fuzz/ipv6 build/fuzz/ipv6 \
		-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

# The distributions' dependency graph in docs/architecture.md, drawn from the sources (graphviz's dot;
# tests/setup/test_docs_graph.py fails when the committed DOT no longer matches the code).
docs-graph: deps
	$(PYTHON) tools/depgraph.py --dot docs/dependencies.dot
	dot -Tsvg docs/dependencies.dot -o docs/dependencies.svg

clean:
	rm -rf $(VENV) .venvs wheelhouse build
	find . -name _build -o -name dist -o -name '*.egg-info' | grep -v '^./.venv' | xargs rm -rf
