#!/usr/bin/env bash
# Developer entry point on a fresh Debian 12/13 machine (no Pi needed):
#   bash deploy/dev.sh demo     set up, then run the whole appliance on simulated hardware
#   bash deploy/dev.sh test     set up, then run every test tier (what CI runs)
#   bash deploy/dev.sh setup    only install system packages, uv and the locked Python deps
#   bash deploy/dev.sh bench    set up, then run the benchmarks (JSON + chart in bench-results/)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # audio: PortAudio, the ALSA->PulseAudio plugin and a private PulseAudio for the virtual card
  libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
  # synthetic speech for the simulator, the demo and the tests; the wake-word evaluation speaks
  # with three synthesizers (espeak-ng, flite, festival) and reads Debian's fortune files
  espeak-ng sox flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  fortunes-min fortunes
  # building systemd-python; systemd-analyze; containers with real systemd for system tests
  gcc pkg-config libsystemd-dev python3-dev python3-venv systemd systemd-container debootstrap
  # the Pi's architecture (arm64) emulated for the system tests
  qemu-user-static binfmt-support
  # provisioning over SSH and its checks
  openssh-client openssh-server shellcheck iproute2 ca-certificates curl
  # several speakers in one home: a real MQTT broker
  mosquitto
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

UV=""
install_uv() {
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv); return; fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/livespeaker/uv-venv"
  if [ ! -x "$venv/bin/uv" ]; then
    say "installing uv into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check uv
  fi
  UV="$venv/bin/uv"
}

setup() {
  install_apt
  install_uv
  say "syncing the locked Python environment (.venv)"
  "$UV" sync --locked --quiet
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  test)
    setup
    say "lint: ruff, mypy (strict)"
    "$UV" run --locked ruff check device tests
    "$UV" run --locked ruff format --check device tests
    "$UV" run --locked mypy
    say "tests: unit, integration and system tiers (two lanes: system, and the rest)"
    # The system tier mostly waits on containers, SSH and qemu, so it runs in a second worker
    # beside the others (tests/conftest.py's scheduler makes the two lanes); `-n 0` runs every
    # test in one process, one after the other.
    "$UV" run --locked pytest -n 2 --dist loadscope "$@"
    ;;
  demo) setup; exec "$UV" run --locked livespeaker demo "$@" ;;
  bench) setup; exec "$UV" run --locked python -m tests.bench "$@" ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
