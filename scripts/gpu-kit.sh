#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no .NET SDK and reaches no package registry
# (the workplace's lent GPU machines), into .gpu-kit/ (git-ignored), in parts small enough to send one per call:
#
#   scripts/gpu-kit.sh [PART_MIB]        # default 54 MiB per part
#
# What it packs (all from this machine, after `dotnet build Trident.sln -c Release`):
#   dotnet.tar.xz   the .NET runtime (host, Microsoft.NETCore.App, Microsoft.AspNetCore.App) — no SDK;
#   bin.tar.xz      the test project's Release output (it holds the trident executable's files too), without
#                   Playwright's driver and without ONNX Runtime's CUDA/TensorRT providers;
#   extra-lib.tar.xz the libraries SkiaSharp links beyond glibc (fontconfig, freetype, expat, libpng, brotli), put
#                   last on LD_LIBRARY_PATH there so that the machine's own win where it has them;
#   cuda.xz.NN      ONNX Runtime's CUDA provider library (271 MiB), xz-compressed and split.
# The parts are laid out as .gpu-kit/cK/ folders, each under PART_MIB, so that call K carries .gpu-kit/cK and copies
# it to one folder there; `TRIDENT_KIT=that-folder scripts/gpu-check.sh` then unpacks and uses them instead of
# building (see that script). The CUDA libraries themselves (cudart, cuBLAS, cuRAND, cuDNN) are not packed: the
# GPU machine must have them (gpu-check.sh finds them and says which are missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
part_mib="${1:-54}"
bin="tests/Trident.Tests/bin/Release/net10.0"
cuda="$bin/libonnxruntime_providers_cuda.so"
[ -f "$bin/Trident.Tests.dll" ] && [ -f "$bin/trident.dll" ] || { echo "gpu-kit: $bin has no build; run: dotnet build Trident.sln -c Release" >&2; exit 1; }
[ -f "$cuda" ] || { echo "gpu-kit: $cuda is missing (the Microsoft.ML.OnnxRuntime.Gpu.Linux package brings it)" >&2; exit 1; }
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
work="$here/.gpu-kit/.work"
rm -rf "$here/.gpu-kit"; mkdir -p "$work"
echo "gpu-kit: packing the .NET runtime from $dotnet_root"
tar -C "$dotnet_root" -cf - dotnet host shared/Microsoft.NETCore.App shared/Microsoft.AspNetCore.App | xz -9 -T2 > "$work/dotnet.tar.xz"
echo "gpu-kit: packing $bin"
tar -C "$bin" --exclude=./.playwright --exclude=./libonnxruntime_providers_cuda.so \
    --exclude=./libonnxruntime_providers_tensorrt.so -cf - . | xz -9 -T2 > "$work/bin.tar.xz"
echo "gpu-kit: packing the libraries SkiaSharp links beyond glibc (a GPU machine's image may lack fontconfig)"
extra="$work/extra-lib"; mkdir -p "$extra"
for lib in $(ldd "$bin/libSkiaSharp.so" "$(ldconfig -p | awk '$1 == "libfontconfig.so.1" { print $NF; exit }')" 2>/dev/null \
             | awk '$3 ~ /^\// { print $3 }' | sort -u); do
  case "$(basename "$lib")" in libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libstdc++.so*|libgcc_s.so*|libz.so*) ;; *) cp -L "$lib" "$extra/" ;; esac
done
tar -C "$extra" -cf - . | xz -9 > "$work/extra-lib.tar.xz"; rm -rf "$extra"
echo "gpu-kit: packing the CUDA provider"
xz -9 -T2 -c "$cuda" > "$work/cuda.xz"
( cd "$work" && split -b "$((part_mib * 1024 * 1024))" -d -a 2 cuda.xz cuda.xz. && rm cuda.xz )
# First-fit into folders of at most part_mib each.
limit=$((part_mib * 1024 * 1024)); k=0; used=$limit
for f in $(cd "$work" && ls -S); do
  size=$(stat -c %s "$work/$f")
  if [ $((used + size)) -gt $limit ]; then k=$((k + 1)); used=0; mkdir -p "$here/.gpu-kit/c$k"; fi
  mv "$work/$f" "$here/.gpu-kit/c$k/"; used=$((used + size))
done
rmdir "$work"
( cd "$here/.gpu-kit" && for d in c*; do ( cd "$d" && sha256sum -- * ); done > SHA256SUMS && cp SHA256SUMS "c$k/" )
for d in "$here"/.gpu-kit/c*; do echo "$(basename "$d"): $(du -sb "$d" | cut -f1) bytes: $(ls "$d" | tr '\n' ' ')"; done
echo "gpu-kit: $k parts; send .gpu-kit/c1 … c$k, copy each into one folder there, then TRIDENT_KIT=that-folder scripts/gpu-check.sh"
