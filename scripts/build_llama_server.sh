#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp sources vendored in the
# llama-cpp-python sdist of the version installed in .venv, so that
# `scripts/bench.py --peer llama-server` compares against the same llama.cpp.
#
# Usage: scripts/build_llama_server.sh [OUT_DIR]
#   OUT_DIR defaults to build/llama-server-src in the repository (git-ignored).
# Prints the path of the built binary on its last line.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$repo/build/llama-server-src}" && cd "${1:-$repo/build/llama-server-src}" && pwd)"
py="$repo/.venv/bin/python"

version="$("$py" -c "import llama_cpp; print(llama_cpp.__version__)")"
src="$out/llama_cpp_python-$version"
echo "llama-cpp-python $version; working in $out"

if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
    "$repo/.venv/bin/pip" download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$out"
    tar -xzf "$out/llama_cpp_python-$version.tar.gz" -C "$out"
fi

cd "$src/vendor/llama.cpp"
# LLAMA_USE_PREBUILT_UI=OFF: no download of the web UI at build time (it is not needed
# to serve the API); tests and examples off: only llama-server is built.
cmake -B build -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
cmake --build build --target llama-server -j"$(nproc)"

bin="$src/vendor/llama.cpp/build/bin/llama-server"
[ -x "$bin" ] || { echo "build finished but $bin is missing" >&2; exit 1; }
ln -sf "$bin" "$out/llama-server"
echo "$out/llama-server"
