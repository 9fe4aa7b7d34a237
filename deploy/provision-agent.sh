#!/usr/bin/env bash
# The Pi side of deploy/provision.sh. provision.sh copies this file with the build into a private
# staging directory on the Pi and runs it as root over SSH; it is not meant to be run by hand.
#
#   provision-agent.sh preflight                    report OS, architecture and what is installed
#   provision-agent.sh run install STAGE [OPTIONS]  the same install, detached from the SSH session:
#                                                   a transient unit livespeaker-provision.service
#                                                   does it; this only relays its output and exit
#                                                   status, so a lost connection cannot stop it half
#                                                   way (it finishes or rolls back by itself)
#   provision-agent.sh install STAGE [OPTIONS]      install or upgrade from STAGE (see cmd_install())
#   provision-agent.sh uninstall [--purge]          remove app and unit (config and key with --purge)
#   provision-agent.sh enroll NAME [--takes N]      guided wake-word enrollment of voice NAME on the
#                                                   Pi's own microphone and speaker (the service is
#                                                   paused meanwhile and always started again)
#
# One run at a time: install and uninstall hold $LOCK; a second run is refused with exit 75.
#
# Layout it maintains:
#   /opt/livespeaker/releases/<version>-<id>/   one venv per build (id = hash of wheel, lock, unit,
#                                               target Python), with its unit file and build hashes
#   /opt/livespeaker/venv -> releases/<...>     the active release (the unit's ExecStart path)
#   /opt/livespeaker/previous -> releases/<...> what a rollback goes back to
#   /etc/livespeaker/config.toml                the config (an edited one is kept)
#   /etc/livespeaker/api-key                    the API key, root:root 0600, for LoadCredential=
#   /var/lib/livespeaker-provision/             hashes of what provisioning installed; last-run
#                                               (how the latest run ended) and last-run.log
#   /run/livespeaker-provision/<run>/           a detached run: its copy of the build, its output
#                                               and exit status (the key only until read)
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
umask 022

APP=/opt/livespeaker
ETC=/etc/livespeaker
STATE=/var/lib/livespeaker-provision
UNIT=livespeaker.service
UNIT_PATH=/etc/systemd/system/$UNIT
USER_NAME=livespeaker
KEEP_RELEASES=3
SUPPORTED_CODENAMES="bookworm trixie"
SUPPORTED_ARCHES="arm64 amd64"
BASE_PACKAGES=(libportaudio2 libasound2-plugins python3 python3-venv python3-systemd ca-certificates)
OPTIONAL_PACKAGES=(python3-lgpio)   # Raspberry Pi OS has it; plain Debian bookworm does not

RUN_ROOT=/run/livespeaker-provision
LOCK=/run/lock/livespeaker-provision.lock
PROVISION_UNIT=livespeaker-provision.service
EXIT_BUSY=75

CHANGES=()
CONFIG_REPLACED=no
step() { printf '  -> %s\n' "$*"; }
note() { printf '     %s\n' "$*"; }
changed() { CHANGES+=("$1"); note "changed: $1"; }
die() { printf 'provision: on %s: %s\n' "$(hostname)" "$1" >&2; exit "${2:-1}"; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# shellcheck disable=SC1091  # the target's os-release, read in a subshell
os_field() { (. /etc/os-release && eval "printf '%s' \"\${$1:-}\""); }

check_platform() {
  local codename arch
  codename=$(os_field VERSION_CODENAME)
  arch=$(dpkg --print-architecture)
  [[ " $SUPPORTED_CODENAMES " == *" $codename "* ]] ||
    die "unsupported OS '$(os_field PRETTY_NAME)': need Raspberry Pi OS or Debian bookworm or trixie" 3
  [[ " $SUPPORTED_ARCHES " == *" $arch "* ]] ||
    die "unsupported architecture '$arch': need a 64-bit OS (arm64); 32-bit Raspberry Pi OS has no wheels for the wake word runtime" 3
  if ! command -v systemctl >/dev/null || [ ! -d /run/systemd/system ]; then
    die "systemd is not running as init on this host" 3
  fi
}

# --- one run at a time, detached from SSH ------------------------------------------------------

unit_busy() {
  case $(systemctl is-active "$PROVISION_UNIT" 2>/dev/null) in
    active | activating | deactivating | reloading) return 0 ;;
    *) return 1 ;;
  esac
}

refuse_busy() {
  local since
  since=$(systemctl show -p ActiveEnterTimestamp --value "$PROVISION_UNIT" 2>/dev/null || true)
  die "another provisioning run is in progress${since:+ (started $since)}; wait for it to end (journalctl -fu $PROVISION_UNIT shows it) and try again" $EXIT_BUSY
}

# Held (fd 8) until this process exits: a second install or uninstall is refused, not queued.
take_lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 8>>"$LOCK"
  flock -n 8 || refuse_busy
}

lock_free() { mkdir -p "$(dirname "$LOCK")" && flock -n "$LOCK" true; }

# A finished run's transient unit lingers for a moment after its result is written (--collect
# unloads it once its processes are gone); the next run can only reuse the name after that.
wait_unit_unloaded() {
  local tries=100
  while [ $tries -gt 0 ]; do
    tries=$((tries - 1))
    [ "$(systemctl show -p LoadState --value "$PROVISION_UNIT" 2>/dev/null)" = loaded ] || return 0
    unit_busy || systemctl reset-failed "$PROVISION_UNIT" 2>/dev/null || true
    sleep 0.2
  done
  return 0
}

exit_meaning() {
  case $1 in
    0) echo "ok" ;; 4) echo "unhealthy, rolled back" ;; 5) echo "running, self-check failed" ;;
    75) echo "refused: another run was in progress" ;; 78) echo "config rejected" ;;
    *) echo "failed" ;;
  esac
}

# The end of a detached install (its EXIT trap): record how it ended for the follower on the SSH
# side (rc) and, in case that follower is gone, for the next run (last-run).
finish_run() {
  local rc=$1 run=$2
  rm -rf "$run/stage" "$run/key"
  install -d -m 0755 "$STATE"
  cp -f "$run/log" "$STATE/last-run.log" 2>/dev/null || true
  printf 'id=%s\nended=%s\nexit=%s\nreported=no\n' "$(basename "$run")" \
    "$(date -u +%FT%TZ)" "$rc" >"$STATE/last-run"
  printf '%s\n' "$rc" >"$run/rc.tmp" && mv -f "$run/rc.tmp" "$run/rc"
}

# Relays a detached run's output until its exit status appears; returns that status.
follow_run() {
  local run=$1 off=0 size rc="" ended=0
  while :; do
    [ -f "$run/rc" ] && rc=$(cat "$run/rc")
    size=$(stat -c %s "$run/log" 2>/dev/null || echo 0)
    if [ "$size" -gt "$off" ]; then
      tail -c "+$((off + 1))" "$run/log" | head -c "$((size - off))"
      off=$size
    fi
    [ -n "$rc" ] && break
    if ! unit_busy; then
      ended=$((ended + 1))
      if [ $ended -ge 5 ]; then
        note "the provisioning unit ended without a result (journalctl -u $PROVISION_UNIT)"
        rc=1; break
      fi
    fi
    sleep 0.3
  done
  [ ! -f "$STATE/last-run" ] || sed -i 's/^reported=no$/reported=yes/' "$STATE/last-run"
  rm -rf "$run"
  wait_unit_unloaded
  return "$rc"
}

# run install STAGE [OPTIONS]: starts `install` as a transient unit and follows it.
cmd_run() {
  if [ "${1:-}" != install ] || [ $# -lt 2 ]; then die "usage: run install STAGE [OPTIONS]" 2; fi
  local stage=$2 args=() a key="" id run err
  shift 2
  if unit_busy || ! lock_free; then refuse_busy; fi
  rm -rf "${RUN_ROOT:?}"/*/  # earlier runs' leftovers (nothing runs now)
  id=$(date -u +%Y%m%dT%H%M%SZ)-$$
  run=$RUN_ROOT/$id
  install -d -m 0700 "$RUN_ROOT" "$run"
  # Its own copy: the SSH side removes its staging directory when it exits, however it exits.
  cp -r "$stage" "$run/stage"
  for a in "$@"; do
    if [ "$a" = --key-on-stdin ]; then
      IFS= read -r key || true
      # Root-only, in RAM (/run), read and deleted by the install first thing; never in argv.
      (umask 077 && printf '%s\n' "$key" >"$run/key")
      key=""
      args+=(--key-file "$run/key")
    else
      args+=("$a")
    fi
  done
  exec </dev/null
  : >"$run/log"
  local attempt=1
  while true; do
    wait_unit_unloaded
    if err=$(systemd-run --quiet --collect --unit="$PROVISION_UNIT" \
        --description="livespeaker provisioning run $id" --setenv=HOME=/root \
        -p StandardOutput="append:$run/log" -p RuntimeMaxSec=3600 \
        bash "$run/stage/provision-agent.sh" install "$run/stage" --run-dir "$run" "${args[@]}" 2>&1); then
      break
    fi
    # The previous run's unit can outlive its wait (a container's cgroup slow to empty): it is
    # finished (not busy), so clear it and try again, a few times.
    if unit_busy || [ $attempt -ge 3 ] || [[ $err != *"already loaded"* ]]; then
      rm -rf "$run"
      unit_busy && refuse_busy
      die "could not start $PROVISION_UNIT: $err ($(systemctl show -p LoadState -p ActiveState -p SubState "$PROVISION_UNIT" 2>&1 | tr '\n' ' '))"
    fi
    attempt=$((attempt + 1))
    systemctl stop "$PROVISION_UNIT" 2>/dev/null || true
    systemctl reset-failed "$PROVISION_UNIT" 2>/dev/null || true
  done
  follow_run "$run"
}

cmd_preflight() {
  check_platform
  local current=none
  [ -L "$APP/venv" ] && current=$(basename "$(readlink "$APP/venv")")
  printf 'os=%s\n' "$(os_field PRETTY_NAME)"
  printf 'codename=%s\n' "$(os_field VERSION_CODENAME)"
  printf 'arch=%s\n' "$(dpkg --print-architecture)"
  printf 'python=%s\n' "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
  printf 'key=%s\n' "$([ -s "$ETC/api-key" ] && echo present || echo absent)"
  printf 'release=%s\n' "$current"
  printf 'service=%s\n' "$(systemctl is-active "$UNIT" 2>/dev/null || true)"
  if [ -f "$STATE/last-run" ] && grep -qx 'reported=no' "$STATE/last-run"; then
    local rid rexit rended
    rid=$(sed -n 's/^id=//p' "$STATE/last-run")
    rexit=$(sed -n 's/^exit=//p' "$STATE/last-run")
    rended=$(sed -n 's/^ended=//p' "$STATE/last-run")
    printf 'unreported_run=%s ended %s with exit %s (%s); its output: %s\n' "$rid" "$rended" \
      "$rexit" "$(exit_meaning "$rexit")" "$STATE/last-run.log"
    sed -i 's/^reported=no$/reported=yes/' "$STATE/last-run"
  fi
  if unit_busy; then printf 'busy=yes\n'; fi
}

# --- install steps ---------------------------------------------------------------------------

install_packages() {
  step "Debian packages"
  local wanted=("${BASE_PACKAGES[@]}") missing=() p
  # An image with emptied package lists would make every package look unavailable.
  if ! compgen -G '/var/lib/apt/lists/*Packages*' >/dev/null; then apt-get update -qq; fi
  for p in "${OPTIONAL_PACKAGES[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then wanted+=("$p"); else note "$p: not offered by this OS, skipped"; fi
  done
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then note "all present: ${wanted[*]}"; return; fi
  note "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  changed "Debian packages ${missing[*]}"
}

ensure_user() {
  step "system user $USER_NAME (groups audio, gpio)"
  if ! getent group gpio >/dev/null; then groupadd --system gpio; changed "group gpio created"; fi
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/livespeaker --no-create-home --shell /usr/sbin/nologin \
      --groups audio,gpio --comment "livespeaker daemon" "$USER_NAME"
    changed "user $USER_NAME created"
    return
  fi
  local g
  for g in audio gpio; do
    if ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$g"; then
      usermod -aG "$g" "$USER_NAME"
      changed "user $USER_NAME added to $g"
    fi
  done
  note "present: $(id "$USER_NAME")"
}

# Sets RELEASE (directory name) for the build in $STAGE.
install_release() {
  local stage=$1 wheel pyver id version
  wheel=$(find "$stage" -maxdepth 1 -name '*.whl' | head -n1)
  [ -n "$wheel" ] || die "no wheel in the staged build"
  (cd "$stage" && sha256sum -c --quiet SHA256SUMS) || die "staged build is corrupt (checksum mismatch)"
  pyver=$(python3 -c 'import sys; print(sys.version)')
  id=$( { cat "$stage/SHA256SUMS"; printf '%s\n' "$pyver"; } | sha256sum | cut -c1-12)
  version=$(basename "$wheel" | cut -d- -f2)
  RELEASE="$version-$id"
  local dir=$APP/releases/$RELEASE
  step "application release $RELEASE (python $(python3 -V | cut -d' ' -f2))"
  if [ -f "$dir/.complete" ]; then note "already installed"; return; fi
  rm -rf "$dir"
  mkdir -p "$APP/releases"
  # --system-site-packages: python3-systemd (and python3-lgpio) come from apt, not from wheels.
  python3 -m venv --system-site-packages --without-pip "$dir"
  local deps_id reuse="" site r
  deps_id=$( { sha_of "$stage/requirements.txt"; printf '%s\n' "$pyver"; } | sha256sum | cut -c1-16)
  site=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  for r in "$APP"/releases/*/; do
    if [ -f "$r.complete" ] && [ "$(cat "$r/deps.id" 2>/dev/null)" = "$deps_id" ]; then reuse=${r%/}; fi
  done
  if [ -n "$reuse" ]; then
    # Same lock, same Python: the dependencies are identical, so hard-link them from that
    # release (releases are never modified) instead of unpacking ~150 MB again on a Pi Zero.
    note "locked dependencies unchanged: linking them from $(basename "$reuse")"
    cp -al "$("$reuse/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/." "$site/"
  else
    "$dir/bin/python" -m ensurepip --default-pip >/dev/null
    note "installing the locked dependencies (pip --require-hashes)"
    # Exactly the lock's pins, like `uv sync --locked` in CI. uv does not enforce a pinned
    # package's Requires-Python (the lock pins backports-strenum 1.3.1, which says <3.11 yet
    # works), so pip must not either, or the Pi would diverge from what CI tested.
    if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --no-deps --only-binary=:all: --ignore-requires-python \
        -r "$stage/requirements.txt"; then
      rm -rf "$dir"; die "dependency installation failed"
    fi
  fi
  # --force-reinstall: linked dependencies include the previous build of the same version.
  if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
      --force-reinstall "$wheel"; then
    rm -rf "$dir"; die "installing $(basename "$wheel") failed"
  fi
  if ! "$dir/bin/livespeaker" --version >/dev/null; then
    rm -rf "$dir"; die "the new release does not start ('livespeaker --version' failed)"
  fi
  printf '%s\n' "$deps_id" >"$dir/deps.id"
  install -m 0644 "$stage/$UNIT" "$dir/$UNIT"
  install -m 0644 "$stage/SHA256SUMS" "$dir/SHA256SUMS"
  touch "$dir/.complete"
  changed "release $RELEASE installed"
}

# Installs the config unless the one on the Pi was edited there (then it is kept, unless forced).
install_config() {
  local stage=$1 force=$2 new=$1/config.toml
  step "configuration $ETC/config.toml"
  install -d -m 0755 "$ETC" "$STATE"
  if [ ! -f "$new" ]; then
    if [ -f "$ETC/config.toml" ]; then note "kept (no --config given)"; return; fi
    new=$stage/default-config.toml
    note "no --config given: installing the documented defaults"
  fi
  "$APP/releases/$RELEASE/bin/livespeaker" config check "$new" >/dev/null ||
    die "the configuration does not validate with this release (see above)" 78
  local want have="" installed=""
  want=$(sha_of "$new")
  [ -f "$ETC/config.toml" ] && have=$(sha_of "$ETC/config.toml")
  [ -f "$STATE/config.sha256" ] && installed=$(cat "$STATE/config.sha256")
  if [ "$have" = "$want" ]; then
    note "unchanged"
  elif [ -n "$have" ] && [ "$have" != "$installed" ] && [ "$force" != yes ]; then
    note "KEPT: $ETC/config.toml was edited on this host; use --force-config to replace it"
    return
  else
    [ -n "$have" ] && cp -p "$ETC/config.toml" "$ETC/config.toml.bak"
    CONFIG_REPLACED=yes
    install -m 0644 "$new" "$ETC/config.toml.new"
    mv -f "$ETC/config.toml.new" "$ETC/config.toml"
    if [ -n "$have" ]; then changed "config.toml replaced (old one in config.toml.bak)"
    else changed "config.toml installed"; fi
  fi
  printf '%s\n' "$want" >"$STATE/config.sha256"
}

# The key arrives on stdin (never in argv). An empty stdin keeps the key already there.
install_key() {
  local key=$1
  step "API key $ETC/api-key (root only, 0600)"
  install -d -m 0755 "$ETC"
  if [ -z "$key" ]; then
    [ -s "$ETC/api-key" ] || die "no API key on this host and none was sent"
    note "kept"
  else
    local tmp
    tmp=$(umask 077 && mktemp "$ETC/.api-key.XXXXXX")
    printf '%s\n' "$key" >"$tmp"
    if [ -f "$ETC/api-key" ] && cmp -s "$tmp" "$ETC/api-key"; then
      rm -f "$tmp"; note "unchanged"
    else
      mv -f "$tmp" "$ETC/api-key"; changed "API key stored"
    fi
  fi
  chown root:root "$ETC/api-key"
  chmod 0600 "$ETC/api-key"
}

activate() {
  local release=$1 old=""
  [ -L "$APP/venv" ] && old=$(basename "$(readlink "$APP/venv")")
  if [ "$old" != "$release" ]; then
    [ -n "$old" ] && ln -sfn "releases/$old" "$APP/previous"
    ln -sfn "releases/$release" "$APP/venv.new" && mv -T "$APP/venv.new" "$APP/venv"
    changed "active release ${old:-none} -> $release"
  fi
  if ! cmp -s "$APP/releases/$release/$UNIT" "$UNIT_PATH"; then
    install -m 0644 "$APP/releases/$release/$UNIT" "$UNIT_PATH.new"
    mv -f "$UNIT_PATH.new" "$UNIT_PATH"
    changed "unit $UNIT_PATH"
  fi
}

# (Re)starts the unit and waits for it: with Type=notify, `systemctl start` returns once the
# daemon sent READY=1 (or failed). Then the same invocation must stay active for $3 seconds.
start_and_wait() {
  local verb=$1 timeout=$2 settle=$3 state inv now deadline
  local rc=0
  timeout "$timeout" systemctl "$verb" "$UNIT" 2>/dev/null || rc=$?
  if [ $rc -ne 0 ]; then
    state="$(systemctl show -p ActiveState --value "$UNIT") ($(systemctl show -p SubState --value "$UNIT"))"
    if [ $rc -eq 124 ]; then note "not ready within ${timeout}s (state $state)"
    else note "start failed (state $state)"; fi
    return 1
  fi
  state=$(systemctl show -p ActiveState --value "$UNIT")
  [ "$state" = active ] || { note "service state after start: $state"; return 1; }
  inv=$(systemctl show -p InvocationID --value "$UNIT")
  note "ready (active, $(systemctl show -p Type --value "$UNIT")); watching it for ${settle}s"
  deadline=$((SECONDS + settle))
  while [ $SECONDS -lt "$deadline" ]; do
    sleep 0.5
    # A query systemd did not answer (busy on a loaded host) is asked again, not read as a stop.
    state=$(systemctl show -p ActiveState --value "$UNIT") || continue
    now=$(systemctl show -p InvocationID --value "$UNIT") || continue
    if [ "$state" != active ] || [ "$now" != "$inv" ]; then
      note "the service stopped or restarted after reporting ready (state $state)"; return 1
    fi
  done
}

start_service() {
  local timeout=$1 settle=$2 restart=$3
  step "service $UNIT"
  systemctl daemon-reload
  if ! systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
    systemctl enable --quiet "$UNIT"; changed "service enabled"
  fi
  systemctl reset-failed "$UNIT" 2>/dev/null || true
  if [ "$restart" = yes ]; then
    note "restarting"; start_and_wait restart "$timeout" "$settle"
  elif ! systemctl is-active --quiet "$UNIT"; then
    note "starting"; changed "service started"; start_and_wait start "$timeout" "$settle"
  else
    note "running and nothing changed: not restarted"
  fi
}

# alsa-lib prints a line per underrun it recovers from (hundreds a second on a loaded host): they
# are counted, not shown, so that the lines that say why the service failed fit in the tail.
ALSA_NOISE='snd_pcm_recover) underrun occurred'

journal_tail() {
  local lines noise
  lines=$(journalctl -u "$UNIT" --since "@$1" --no-pager -o short-iso 2>&1 || true)
  noise=$(grep -cF "$ALSA_NOISE" <<<"$lines" || true)
  printf '\n----- journal of %s since this run (last 60 lines) -----\n' "$UNIT"
  grep -vF "$ALSA_NOISE" <<<"$lines" | tail -n 60 || true
  [ "${noise:-0}" -eq 0 ] || printf '(%s lines of "%s" left out)\n' "$noise" "$ALSA_NOISE"
  printf -- '----- end of journal -----\n\n'
}

# Goes back to what ran before this run: release, unit and (if replaced) config. Without a
# previous release the service is stopped and disabled.
rollback() {
  local failed=$1 prev=$2
  if [ "$CONFIG_REPLACED" = yes ] && [ -f "$ETC/config.toml.bak" ]; then
    step "ROLLBACK: restoring the previous config.toml"
    mv -f "$ETC/config.toml.bak" "$ETC/config.toml"
    rm -f "$STATE/config.sha256"
  fi
  if [ "$prev" = "$failed" ]; then
    step "ROLLBACK: same release as before; restarting it with the restored config"
    systemctl reset-failed "$UNIT" 2>/dev/null || true
    start_and_wait restart 90 3 || note "it did not come up either"
  elif [ -n "$prev" ] && [ -f "$APP/releases/$prev/.complete" ]; then
    step "ROLLBACK to release $prev and its unit"
    ln -sfn "releases/$prev" "$APP/venv.new" && mv -T "$APP/venv.new" "$APP/venv"
    install -m 0644 "$APP/releases/$prev/$UNIT" "$UNIT_PATH"
    systemctl daemon-reload
    systemctl reset-failed "$UNIT" 2>/dev/null || true
    changed "ROLLED BACK to $prev"
    if start_and_wait restart 90 3; then note "previous release $prev is running again"
    else note "the previous release did not come up either"; fi
    rm -f "$APP/previous"
  else
    step "ROLLBACK: no previous release; stopping and disabling the service"
    systemctl disable --now --quiet "$UNIT" 2>/dev/null || true
    rm -f "$APP/venv" "$UNIT_PATH"
    systemctl daemon-reload
    systemctl reset-failed "$UNIT" 2>/dev/null || true
  fi
  if [ "$prev" != "$failed" ]; then
    rm -rf "${APP:?}/releases/$failed"
    note "removed the failed release $failed"
  fi
}

prune_releases() {
  local keep=() r n=0
  [ -L "$APP/venv" ] && keep+=("$(basename "$(readlink "$APP/venv")")")
  [ -L "$APP/previous" ] && keep+=("$(basename "$(readlink "$APP/previous")")")
  # newest first; release names contain no whitespace
  # shellcheck disable=SC2045
  for r in $(ls -1t "$APP/releases"); do
    n=$((n + 1))
    [[ " ${keep[*]} " == *" $r "* ]] && continue
    [ "$n" -le "$KEEP_RELEASES" ] && continue
    rm -rf "${APP:?}/releases/$r"; note "pruned old release $r"
  done
}

# Exports the unit's Environment= (e.g. a drop-in's PULSE_SERVER) into this (sub)shell.
service_env() {
  local assignments=() a
  read -ra assignments <<<"$(systemctl show -p Environment --value "$UNIT")"
  for a in "${assignments[@]}"; do
    [[ $a == *=* ]] && export "${a?}"
  done
  return 0
}

# Prints one line per check from the doctor's JSON report.
doctor_lines() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
for c in r["checks"]:
    print("     [%-4s] %-14s %s" % (c["status"], c["name"], c["detail"]))
' 2>/dev/null
}

self_check() {
  step "self-check (livespeaker doctor --json)"
  local bin=$APP/venv/bin/livespeaker out err rc=0
  if ! "$bin" doctor --help >/dev/null 2>&1; then
    note "SKIPPED: this build has no 'livespeaker doctor' command yet"
    DOCTOR=skipped; return 0
  fi
  err=$(mktemp)
  # The service's config and credential; the key stays in its root-only file. The daemon keeps
  # running: on a real Pi the microphone check then shares the device with it (dsnoop/PipeWire).
  # The echo check (6 s of speech to measure the room) is left to the user: `livespeaker doctor`.
  out=$(service_env && CREDENTIALS_DIRECTORY=$ETC exec "$bin" --config "$ETC/config.toml" doctor --json --skip echo 2>"$err") || rc=$?
  if ! doctor_lines <<<"$out"; then
    printf '%s\n' "$out" | sed 's/^/     | /'
  fi
  if [ $rc -ne 0 ]; then sed 's/^/     ! /' "$err" | tail -n 20; fi
  rm -f "$err"
  if [ $rc -eq 0 ]; then DOCTOR=passed; else DOCTOR="FAILED (exit $rc)"; fi
  return $rc
}

join_changes() { local IFS=';'; local s="${CHANGES[*]}"; printf '%s' "${s//;/; }"; }

summary() {
  printf '\n  summary for %s (%s, %s):\n' "$(hostname)" "$(os_field PRETTY_NAME)" "$(dpkg --print-architecture)"
  printf '     release   %s\n' "$(basename "$(readlink "$APP/venv" 2>/dev/null || echo none)")"
  printf '     previous  %s\n' "$(basename "$(readlink "$APP/previous" 2>/dev/null || echo none)")"
  printf '     service   %s, %s\n' "$(systemctl is-enabled "$UNIT" 2>/dev/null || true)" "$(systemctl is-active "$UNIT" 2>/dev/null || true)"
  printf '     config    %s\n' "$ETC/config.toml"
  printf '     api key   %s (%s)\n' "$ETC/api-key" "$(stat -c '%U:%G %a' "$ETC/api-key")"
  printf '     doctor    %s\n' "${DOCTOR:-not run}"
  if [ ${#CHANGES[@]} -eq 0 ]; then
    printf '  NO CHANGES: everything was already up to date\n'
  else
    printf '  CHANGED (%d): %s\n' "${#CHANGES[@]}" "$(join_changes)"
  fi
}

# install STAGE [--force-config] [--key-on-stdin | --key-file F] [--ready-timeout S] [--settle S]
#               [--run-dir D]
cmd_install() {
  local stage=$1 force=no key_on_stdin=no key_file="" run_dir="" timeout=90 settle=5 key=""
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --force-config) force=yes ;;
      --key-on-stdin) key_on_stdin=yes ;;
      --key-file) key_file=$2; shift ;;
      --run-dir) run_dir=$2; shift ;;
      --ready-timeout) timeout=$2; shift ;;
      --settle) settle=$2; shift ;;
      *) die "unknown install option $1" 2 ;;
    esac
    shift
  done
  if [ -n "$run_dir" ]; then
    # shellcheck disable=SC2064  # run_dir is fixed for this run
    trap "finish_run \$? '$run_dir'" EXIT
    trap 'exit 143' TERM INT HUP
  fi
  if [ -n "$key_file" ]; then
    IFS= read -r key <"$key_file" || true
    rm -f "$key_file"
  elif [ "$key_on_stdin" = yes ]; then
    IFS= read -r key || true
  fi
  if [ "$key_on_stdin" = yes ] || [ -n "$key_file" ]; then
    key=${key//[[:space:]]/}
    [ -n "$key" ] || die "an empty API key was sent" 2
  fi
  exec </dev/null   # nothing below may read the key channel
  take_lock
  local started
  started=$(date +%s)
  check_platform
  install_packages
  ensure_user
  install_release "$stage"
  install_config "$stage" "$force"
  install_key "$key"
  local old_release="" restart=no
  [ -L "$APP/venv" ] && old_release=$(basename "$(readlink "$APP/venv")")
  activate "$RELEASE"
  [ ${#CHANGES[@]} -gt 0 ] && restart=yes
  if ! start_service "$timeout" "$settle" "$restart"; then
    journal_tail "$started"
    if [ ${#CHANGES[@]} -gt 0 ]; then
      rollback "$RELEASE" "$old_release"
    fi
    summary
    die "the service did not become healthy; see the journal above" 4
  fi
  prune_releases
  local rc=0
  self_check || rc=5
  summary
  return $rc
}

cmd_uninstall() {
  local purge=no
  [ "${1:-}" = --purge ] && purge=yes
  unit_busy && refuse_busy
  take_lock
  step "stopping and disabling $UNIT"
  systemctl disable --now --quiet "$UNIT" 2>/dev/null || true
  rm -f "$UNIT_PATH"
  [ "$purge" = yes ] && rm -rf "$UNIT_PATH.d"
  systemctl daemon-reload
  systemctl reset-failed "$UNIT" 2>/dev/null || true
  step "removing $APP"
  rm -rf "$APP"
  if [ "$purge" = yes ]; then
    step "purging $ETC (config and API key), $STATE, /var/lib/livespeaker and user $USER_NAME"
    rm -rf "$ETC" "$STATE" /var/lib/livespeaker
    if id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME"; fi
  else
    note "kept $ETC (config and API key); use --purge to remove them"
  fi
  printf '  uninstalled\n'
}

# --- enroll: the guided wake-word enrollment, run where the microphone is -----------------------

ENROLL_RESUME=no
resume_service() {
  [ "$ENROLL_RESUME" = yes ] || return 0
  ENROLL_RESUME=no
  trap '' PIPE  # the SSH session may be gone: starting the service again must not depend on it
  if systemctl start "$UNIT"; then step "$UNIT started again"; else note "could not start $UNIT: see journalctl -u $UNIT"; fi
}

cmd_enroll() {
  local name=${1:-}
  shift || true
  [[ $name =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] ||
    die "voice name '$name': use 1-32 lower-case letters, digits, '-' or '_'" 2
  local bin=$APP/venv/bin/livespeaker
  [ -x "$bin" ] || die "livespeaker is not installed here: provision this Pi first" 3
  "$bin" wakeword enroll --help >/dev/null 2>&1 ||
    die "the installed release has no 'livespeaker wakeword enroll': provision a newer build first" 3
  unit_busy && refuse_busy
  take_lock
  local state
  state=$(service_env && "$bin" --config "$ETC/config.toml" config show 2>/dev/null |
    sed -n 's/^state_dir = "\(.*\)"$/\1/p' | head -n1)
  state=${state:-/var/lib/livespeaker}
  install -d -o "$USER_NAME" -g "$USER_NAME" -m 0700 "$state"
  if systemctl is-active --quiet "$UNIT"; then
    step "pausing $UNIT while the microphone records the takes"
    trap resume_service EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ENROLL_RESUME=yes
    systemctl stop "$UNIT"
  fi
  step "enrolling voice '$name': listen for the tone, then say the wake word once"
  local rc=0
  # As the service's user, with the service's environment and config: the voice lands in its
  # state_dir (0600, owned by it) and the takes come from the device the service uses.
  (service_env && exec runuser -u "$USER_NAME" -- env PYTHONUNBUFFERED=1 \
    "$bin" --config "$ETC/config.toml" wakeword enroll --name "$name" "$@") || rc=$?
  resume_service
  return $rc
}

[ "$(id -u)" -eq 0 ] || die "must run as root" 2
case ${1:-} in
  preflight) cmd_preflight ;;
  run) shift; cmd_run "$@" ;;
  install) shift; cmd_install "$@" ;;
  uninstall) shift; cmd_uninstall "$@" ;;
  enroll) shift; cmd_enroll "$@" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
