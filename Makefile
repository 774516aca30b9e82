# The README's two commands. `make serve` runs the main job on the default model; `make test` builds and runs
# every test (ctest), the CPU build always, the CUDA build too where nvcc exists (GPU tests skip without a GPU).
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
JOBS ?= $(shell nproc)
MODEL ?= models/demo/base
CMAKE_FLAGS ?=

.PHONY: serve test deps venv build build-serve build-asan clean

deps:
	@bash scripts/install-deps.sh

venv: deps
	@bash scripts/setup-venv.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Sanitized CPU build (ASan+UBSan) of the parsers with their tests and of the server, which the e2e tests drive
# again (label sanitized), run as part of `make test`.
build-asan: deps
	@cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLORASERVE_CUDA=OFF -DLORASERVE_SANITIZE=ON \
	  -DLORASERVE_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS) --target ls_sanitized_tests

# Only what the server needs: the loraserve binary (with the CUDA backend where nvcc exists).
build-serve: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target loraserve

serve: build-serve
	@bash scripts/serve.sh $(BUILD_DIR)/app/loraserve $(MODEL)

test: build build-asan venv
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L cpu
	@cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) -L sanitized

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
