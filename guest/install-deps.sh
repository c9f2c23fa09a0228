#!/usr/bin/env bash
# Install what kata-ts needs on Debian 12 (run as root): the addon toolchain, the guest kernel build
# dependencies, the static init's toolchain, QEMU (the comparison backend and the payload cross-check) and Go with
# containerd's ttrpc sources (the ttRPC conformance peer, tests/conformance/go/), and containerd 1.6 with ctr, umoci
# and containerd's Go sources (the shim v2 tests and bench:ctr; src/shim/proto/ vendors the .proto files), and
# podman with conmon (tests/e2e/podman.test.ts).
set -euo pipefail
PKGS=(build-essential python3 binutils linux-source-6.1 bc flex bison libelf-dev libssl-dev dwarves
      busybox-static cpio e2fsprogs iproute2 procps qemu-system-x86 xz-utils golang-go golang-github-containerd-ttrpc-dev runc
      containerd umoci golang-github-containerd-containerd-dev util-linux podman)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "kata-ts: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
