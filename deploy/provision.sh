#!/usr/bin/env bash
# Provision a Raspberry Pi (Raspberry Pi OS / Debian bookworm or trixie, 64-bit) as a livespeaker,
# over SSH, from this checkout. Run it on your own machine; run it again to upgrade.
#
# Usage: deploy/provision.sh [OPTIONS] USER@HOST [USER@HOST...]
#
# With several hosts (a home with a speaker in each room) the release is built once and every host
# is provisioned in parallel with the same options, each with its own health check and rollback;
# output lines are prefixed with the host, and a summary line per host ends the run (exit status:
# the first failing host's, in the order given). The API key then comes from --api-key-file or is
# kept on each host (no prompt). With Ansible: deploy/ansible/fleet.yml runs the same steps.
#
#   -p, --port PORT          SSH port (default: 22 or your ssh_config)
#   -i, --identity FILE      SSH private key
#   --ssh-config FILE        ssh_config to use (e.g. one Host entry per speaker, with its port and key)
#   --known-hosts FILE       known_hosts file to check the Pi's host key against (default: yours).
#                            Host keys are always checked: connect once with plain `ssh` and compare
#                            the fingerprint before the first provisioning.
#   --config FILE            livespeaker config to install as /etc/livespeaker/config.toml. A config
#                            edited on the Pi since the last provisioning is kept, unless
#   --force-config           ... this is given. Without --config the Pi's config is kept (or the
#                            documented defaults are installed on a fresh Pi).
#   --api-key-file FILE      file with the Gemini API key. Without it you are prompted, unless the Pi
#                            already has a key (then it is kept). The key travels only over the SSH
#                            session's stdin and is stored root-only (0600) at /etc/livespeaker/api-key.
#   --source DIR             project checkout to build (default: the one holding this script)
#   --build-only DIR         no SSH: build the release (wheel, locked requirements, unit, agent,
#                            --config if given) into DIR and stop (what deploy/ansible copies)
#   --stage DIR              install a release built by --build-only instead of building one
#   --ready-timeout SECONDS  how long the service may take to report ready (default: 90)
#   --settle SECONDS         how long it must then stay up to count as healthy (default: 5)
#   --enroll NAME            no install: enroll voice NAME for the wake word on the Pi's own
#                            microphone and speaker (say the wake word after each tone; a bad take
#                            is asked again). The service pauses meanwhile and starts again after.
#                            See `who_can_wake` in the config. Remove one with
#                            `sudo -u livespeaker livespeaker wakeword forget NAME` on the Pi.
#   --takes N                with --enroll: how many good takes to record (default 5, at least 4)
#   --uninstall              stop and remove the service and the app (config and key are kept)
#   --purge                  with --uninstall: also remove config, key, state and the system user
#   -h, --help               show this help
#
# What it does: builds a wheel from the checkout and exports the locked dependencies (uv.lock, with
# hashes, the same lock CI tests), copies them over SSH, and on the Pi (as root, via sudo -n for a
# non-root user): checks OS and architecture; installs Debian packages (PortAudio, venv,
# python3-systemd, python3-lgpio where offered); creates the system user `livespeaker` in groups
# audio and gpio; installs the build into a new venv /opt/livespeaker/releases/<version>-<hash>;
# installs config, key and systemd unit; points /opt/livespeaker/venv at the new release; restarts
# the service and waits until it reports ready (Type=notify) and stays up; runs
# `livespeaker doctor --json`; prints a summary. If the new release does not become healthy, the
# previous release, unit and config are restored, the journal tail is printed and the exit status
# is 4. A run with nothing new changes nothing and says "NO CHANGES".
#
# The Pi-side install runs detached from the SSH session, as the transient systemd unit
# livespeaker-provision.service; this script relays its output and exit status. If the connection
# is lost, the Pi still finishes (or rolls back) by itself, and the next run reports how it ended.
# One run at a time per Pi: a run started while another is in progress is refused (exit 75).
#
# Exit status: 0 ok; 2 usage; 3 unsupported or unreachable target; 4 unhealthy, rolled back;
# 5 installed and running, but the self-check failed; 6 connection lost during the install (the
# Pi finishes or rolls back by itself; run again to see how it ended); 75 another provisioning
# run is in progress on the Pi; 78 config rejected; 1 other errors. With --enroll: 0 enrolled; 1 not
# enrolled (too many bad takes, or the name is taken: forget it first); 3 livespeaker not installed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(cd "$SCRIPT_DIR/.." && pwd)
PORT="" IDENTITY="" KNOWN_HOSTS="" CONFIG="" FORCE_CONFIG=no KEY_FILE=""
READY_TIMEOUT=90 SETTLE=5 UNINSTALL=no PURGE=no TARGET="" ENROLL="" TAKES=""
BUILD_ONLY="" STAGE="" SSH_CONFIG="" TARGETS=() OPTS=()

say() { printf '==> %s\n' "$*"; }
die() { printf 'provision: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)" 2; fi; }

parse_args() {
  local arg
  while [ $# -gt 0 ]; do
    arg=$1
    case $1 in
      -h | --help) usage; exit 0 ;;
      -p | --port) need_value "$@"; PORT=$2; shift ;;
      -i | --identity) need_value "$@"; IDENTITY=$2; shift ;;
      --known-hosts) need_value "$@"; KNOWN_HOSTS=$2; shift ;;
      --ssh-config) need_value "$@"; SSH_CONFIG=$2; shift ;;
      --config) need_value "$@"; CONFIG=$2; shift ;;
      --force-config) FORCE_CONFIG=yes ;;
      --api-key-file) need_value "$@"; KEY_FILE=$2; shift ;;
      --source) need_value "$@"; SOURCE=$(cd "$2" && pwd); shift ;;
      --ready-timeout) need_value "$@"; READY_TIMEOUT=$2; shift ;;
      --settle) need_value "$@"; SETTLE=$2; shift ;;
      --enroll) need_value "$@"; ENROLL=$2; shift ;;
      --takes) need_value "$@"; TAKES=$2; shift ;;
      --build-only) need_value "$@"; BUILD_ONLY=$2; shift ;;
      --stage) need_value "$@"; [ -d "$2" ] || die "--stage: no such directory $2" 2
        STAGE=$(cd "$2" && pwd); shift ;;
      --uninstall) UNINSTALL=yes ;;
      --purge) PURGE=yes ;;
      -*) die "unknown option $1 (see --help)" 2 ;;
      *) [[ $1 == *@* ]] || die "target must be USER@HOST, got '$1'" 2; TARGETS+=("$1") ;;
    esac
    # The options again, for the per-host runs of a fleet ($1 is now the option's value, if any).
    case $arg in
      --build-only | --stage) ;;
      -*) OPTS+=("$arg"); [ "$arg" = "$1" ] || OPTS+=("$1") ;;
    esac
    shift
  done
  if [ -n "$BUILD_ONLY" ]; then
    [ ${#TARGETS[@]} -eq 0 ] || die "--build-only takes no USER@HOST" 2
    return 0
  fi
  [ ${#TARGETS[@]} -gt 0 ] || { usage >&2; die "USER@HOST missing" 2; }
  TARGET=${TARGETS[0]}
  if [ ${#TARGETS[@]} -gt 1 ] && [ -n "$ENROLL" ]; then
    die "--enroll takes one USER@HOST (a person enrolls at one speaker)" 2
  fi
  [[ $READY_TIMEOUT =~ ^[0-9]+$ && $SETTLE =~ ^[0-9]+$ ]] || die "timeouts are whole seconds" 2
  [[ -z $PORT || $PORT =~ ^[0-9]+$ ]] || die "--port needs a number" 2
  [ "$PURGE" = no ] || [ "$UNINSTALL" = yes ] || die "--purge only goes with --uninstall" 2
  if [ -n "$ENROLL" ]; then
    [[ $ENROLL =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] ||
      die "voice name '$ENROLL': use 1-32 lower-case letters, digits, '-' or '_' (starting with a letter or digit)" 2
    [ "$UNINSTALL" = no ] || die "--enroll and --uninstall do not go together" 2
  fi
  if [ -n "$TAKES" ] && { ! [[ $TAKES =~ ^[0-9]+$ ]] || [ "$TAKES" -lt 4 ]; }; then
    die "--takes needs a number, at least 4" 2
  fi
  local f
  for f in "$IDENTITY" "$KNOWN_HOSTS" "$SSH_CONFIG" "$CONFIG" "$KEY_FILE"; do
    [ -z "$f" ] || [ -r "$f" ] || die "cannot read $f" 2
  done
  [ -z "$KEY_FILE" ] || [ -s "$KEY_FILE" ] || die "API key file $KEY_FILE is empty" 2
}

# --- SSH: one multiplexed, host-key-checked connection ------------------------------------------

WORK="" REMOTE_DIR="" SUDO="" SSH=()
setup_ssh() {
  SSH=(ssh -o StrictHostKeyChecking=yes -o ControlMaster=auto -o "ControlPath=$WORK/ssh-%C"
    -o ControlPersist=300 -o ServerAliveInterval=15 -o ConnectTimeout=15)
  [ -z "$SSH_CONFIG" ] || SSH+=(-F "$SSH_CONFIG")
  [ -z "$PORT" ] || SSH+=(-p "$PORT")
  [ -z "$IDENTITY" ] || SSH+=(-i "$IDENTITY" -o IdentitiesOnly=yes)
  [ -z "$KNOWN_HOSTS" ] || SSH+=(-o "UserKnownHostsFile=$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null)
}

remote() { "${SSH[@]}" "$TARGET" "$@"; }

cleanup() {
  local rc=$?
  if [ -n "$TTY_STATE" ]; then stty "$TTY_STATE" </dev/tty 2>/dev/null || true; fi
  if [ -n "$REMOTE_DIR" ]; then remote "rm -rf '$REMOTE_DIR'" </dev/null >/dev/null 2>&1 || true; fi
  if [ ${#SSH[@]} -gt 0 ]; then "${SSH[@]}" -O exit "$TARGET" >/dev/null 2>&1 || true; fi
  [ -z "$WORK" ] || rm -rf "$WORK"
  exit "$rc"
}

connect() {
  say "connecting to $TARGET${PORT:+ port $PORT} (host key checked)"
  local uid
  if ! uid=$(remote 'id -u' </dev/null); then
    die "cannot log in to $TARGET. If ssh said 'Host key verification failed', connect once with
  plain ssh, compare the fingerprint with the Pi's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
  on its console) and accept it, or pass --known-hosts FILE." 3
  fi
  if [ "$uid" != 0 ]; then
    SUDO="sudo -n"
    remote 'sudo -n true' </dev/null ||
      die "$TARGET is not root and has no passwordless sudo (Raspberry Pi OS gives the first user that)" 3
  fi
  REMOTE_DIR=$(remote 'mktemp -d /tmp/livespeaker-provision.XXXXXXXX' </dev/null)
  [[ $REMOTE_DIR == /tmp/livespeaker-provision.* ]] || die "could not create a staging directory on $TARGET"
}

# Runs the agent on the Pi as root; stdin is passed through (the API key channel).
agent() { remote "$SUDO bash $REMOTE_DIR/provision-agent.sh $*"; }

upload() {
  tar -C "$1" -cf - . | remote "tar -xf - -C '$REMOTE_DIR'" ||
    die "copying the build to $TARGET failed"
}

# --- build: wheel + locked requirements + unit -------------------------------------------------

build() {
  local stage=${1:-$WORK/stage}
  say "building from $SOURCE"
  # $UV is set by `uv run`; deploy/dev.sh may have put uv into its own venv.
  local uv=${UV:-$(command -v uv || true)} fallback=${XDG_CACHE_HOME:-$HOME/.cache}/livespeaker/uv-venv/bin/uv
  [ -n "$uv" ] || [ ! -x "$fallback" ] || uv=$fallback
  [ -n "$uv" ] || die "uv is needed to build (https://docs.astral.sh/uv/); bash deploy/dev.sh setup installs it"
  if [ ! -f "$SOURCE/uv.lock" ] || [ ! -f "$SOURCE/systemd/livespeaker.service" ]; then
    die "$SOURCE is not a livespeaker checkout (uv.lock, systemd/livespeaker.service)" 2
  fi
  mkdir -p "$stage"
  "$uv" build --quiet --wheel --out-dir "$stage" "$SOURCE" || die "uv build failed"
  # The same lock as CI. systemd-python comes from apt (python3-systemd); tflite-runtime is
  # overridden away in pyproject.toml.
  "$uv" export --quiet --no-header --project "$SOURCE" --locked --no-dev --no-emit-project \
    --no-emit-package systemd-python --no-emit-package tflite-runtime \
    --format requirements-txt --output-file "$stage/requirements.txt" ||
    die "uv export failed: is uv.lock up to date with pyproject.toml? (uv lock)"
  cp "$SOURCE/systemd/livespeaker.service" "$stage/livespeaker.service"
  cp "$SOURCE/config/livespeaker.toml" "$stage/default-config.toml"
  (cd "$stage" && sha256sum ./*.whl requirements.txt livespeaker.service >SHA256SUMS)
  [ -z "$CONFIG" ] || cp "$CONFIG" "$stage/config.toml"
  cp "$SCRIPT_DIR/provision-agent.sh" "$stage/"
  printf '    %s\n' "$(basename "$(find "$stage" -maxdepth 1 -name '*.whl')")" \
    "build hash $(sha256sum "$stage/SHA256SUMS" | cut -c1-12)"
}

# --- the API key: never in argv, a log or shell history -----------------------------------------

KEY="" TTY_STATE=""
read_key_prompt() {
  if [ -n "${LIVESPEAKER_PROVISION_NO_PROMPT:-}" ] || ! { true </dev/tty; } 2>/dev/null; then
    die "no API key on the Pi: pass --api-key-file FILE (no terminal to prompt on)" 2
  fi
  # Echo goes off before the prompt shows, so even keys typed ahead are never displayed.
  TTY_STATE=$(stty -g </dev/tty)
  stty -echo </dev/tty
  printf 'Gemini API key for %s (input hidden): ' "$TARGET" >/dev/tty
  IFS= read -r KEY </dev/tty || true
  stty "$TTY_STATE" </dev/tty && TTY_STATE=""
  printf '\n' >/dev/tty
  [ -n "$KEY" ] || die "no key entered" 2
}

# Several hosts: build once, then one run of this script per host, in parallel.
fleet() {
  local stage=()
  if [ "$UNINSTALL" = no ]; then
    build
    stage=(--stage "$WORK/stage")
    [ -n "$KEY_FILE" ] || say "no --api-key-file: hosts that have no key yet will fail (no prompt with several hosts)"
  fi
  say "${#TARGETS[@]} hosts in parallel: ${TARGETS[*]}"
  local host pids=() i rc first=0
  for host in "${TARGETS[@]}"; do
    (
      set +e
      LIVESPEAKER_PROVISION_NO_PROMPT=1 bash "$0" "${OPTS[@]}" "${stage[@]}" "$host" \
        </dev/null 2>&1 | sed -u "s|^|[$host] |"
      exit "${PIPESTATUS[0]}"
    ) &
    pids+=($!)
  done
  local lines=()
  for i in "${!TARGETS[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    lines+=("$(printf '%-32s %s' "${TARGETS[$i]}" "$(outcome "$rc")")")
    [ "$first" -ne 0 ] || first=$rc
  done
  say "summary"
  printf '    %s\n' "${lines[@]}"
  return "$first"
}

outcome() {
  case $1 in
    0) if [ "$UNINSTALL" = yes ]; then echo "ok: uninstalled"; else echo "ok: runs livespeaker"; fi ;;
    2) echo "FAILED: usage" ;;
    3) echo "FAILED: unreachable or unsupported" ;;
    4) echo "FAILED: unhealthy, rolled back" ;;
    5) echo "installed, but the self-check failed" ;;
    6) echo "connection lost during the install (run again to see how it ended)" ;;
    75) echo "REFUSED: another provisioning run in progress" ;;
    78) echo "FAILED: config rejected" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}

main() {
  parse_args "$@"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/livespeaker-provision.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [ -n "$BUILD_ONLY" ]; then
    if [ -d "$BUILD_ONLY" ] && [ -n "$(ls -A "$BUILD_ONLY")" ]; then
      [ -f "$BUILD_ONLY/SHA256SUMS" ] ||
        die "--build-only: $BUILD_ONLY is neither empty nor an earlier build; not touching it" 2
      find "$BUILD_ONLY" -mindepth 1 -delete  # an earlier build: nothing of it may mix in
    fi
    mkdir -p "$BUILD_ONLY"
    build "$(cd "$BUILD_ONLY" && pwd)"
    say "built into $BUILD_ONLY"
    return 0
  fi
  if [ ${#TARGETS[@]} -gt 1 ]; then
    fleet
    return
  fi
  setup_ssh
  if [ -n "$ENROLL" ]; then
    connect
    mkdir -p "$WORK/stage" && cp "$SCRIPT_DIR/provision-agent.sh" "$WORK/stage/"
    upload "$WORK/stage"
    say "enrolling voice '$ENROLL' on $TARGET: after each tone, say the wake word once, as you would to wake it"
    local rc=0
    agent enroll "$ENROLL" ${TAKES:+--takes "$TAKES"} </dev/null || rc=$?
    case $rc in
      0) say "done: '$ENROLL' is enrolled on $TARGET" ;;
      75) say "REFUSED: a provisioning run is in progress on $TARGET" ;;
      255) say "lost the connection to $TARGET; the service starts again by itself"; rc=6 ;;
      *) say "FAILED: '$ENROLL' was not enrolled (exit $rc; reasons above)" ;;
    esac
    return $rc
  fi
  if [ "$UNINSTALL" = yes ]; then
    connect
    mkdir -p "$WORK/stage" && cp "$SCRIPT_DIR/provision-agent.sh" "$WORK/stage/"
    upload "$WORK/stage"
    say "uninstalling on $TARGET"
    local rc=0
    agent uninstall "$([ "$PURGE" = yes ] && echo --purge)" </dev/null || rc=$?
    [ $rc -ne 75 ] || say "REFUSED: a provisioning run is in progress on $TARGET"
    return $rc
  fi
  if [ -n "$STAGE" ]; then
    [ -f "$STAGE/SHA256SUMS" ] || die "$STAGE is not a release built by --build-only" 2
    cp -r "$STAGE" "$WORK/stage"
    [ -z "$CONFIG" ] || cp "$CONFIG" "$WORK/stage/config.toml"
  else
    build
  fi
  connect
  upload "$WORK/stage"
  say "checking $TARGET"
  local facts
  facts=$(agent preflight </dev/null) || exit $?
  grep -v '^unreported_run=' <<<"$facts" | sed 's/^/    /'
  if grep -q '^unreported_run=' <<<"$facts"; then
    say "the previous provisioning run lost its connection: $(sed -n 's/^unreported_run=//p' <<<"$facts")"
  fi
  if grep -qx 'busy=yes' <<<"$facts"; then
    die "another provisioning run is in progress on $TARGET; wait for it to end and try again" 75
  fi
  local args=(run install "$REMOTE_DIR" --ready-timeout "$READY_TIMEOUT" --settle "$SETTLE")
  [ "$FORCE_CONFIG" = no ] || args+=(--force-config)
  say "installing on $TARGET"
  local rc=0
  if [ -n "$KEY_FILE" ]; then
    agent "${args[@]}" --key-on-stdin <"$KEY_FILE" || rc=$?
  elif grep -qx 'key=absent' <<<"$facts"; then
    read_key_prompt
    # printf is a shell builtin: the key reaches ssh's stdin without ever being an argument.
    agent "${args[@]}" --key-on-stdin < <(printf '%s\n' "$KEY") || rc=$?
    KEY=""
  else
    agent "${args[@]}" </dev/null || rc=$?
  fi
  case $rc in
    0) say "done: $TARGET runs livespeaker" ;;
    4) say "FAILED: the new release was not healthy and was rolled back (journal above)" ;;
    5) say "installed and running, but the self-check failed (output above)" ;;
    75) say "REFUSED: another provisioning run is in progress on $TARGET" ;;
    255 | 129 | 13[0-9] | 14[0-9])  # ssh: 255 connection error; 128+N killed by signal N
      say "lost the connection to $TARGET during the install (ssh exit $rc). The Pi goes on by
    itself: it finishes, or rolls back if the new release is not healthy. Run the same command
    again to see how it ended."
      rc=6 ;;
    *) say "FAILED (exit $rc)" ;;
  esac
  return "$rc"
}

main "$@"
