# Thin wrapper over CMake for the README's commands. The real build is CMakeLists.txt.
.PHONY: all build run test test-quick fuzz clean install

all: build

build:
	scripts/install-deps build
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$$(nproc)

# The main job: the hub with its demo page on http://127.0.0.1:8080/
run:
	scripts/run

test:
	scripts/test

test-quick:
	scripts/test --quick

fuzz:
	scripts/fuzz 60

install: build
	cmake --install build

clean:
	rm -rf build build-asan build-fuzz
