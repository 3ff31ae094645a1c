#!/usr/bin/env bash
# Install the Debian 12 packages lethe needs (idempotent; needs root or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libopenmpi-dev openmpi-bin libblis-dev libscalapack-openmpi-dev liblapack-dev
      libhdf5-openmpi-dev hdf5-tools libinih-dev libcmocka-dev zlib1g-dev
      dataset-fashion-mnist python3 python3-numpy python3-h5py python3-matplotlib)
[ "${LETHE_WITH_TORCH:-0}" = 1 ] && pkgs+=(python3-torch)
[ "${LETHE_WITH_SLURM:-0}" = 1 ] && pkgs+=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
