#!/usr/bin/env bash
# make arm64-check: affectedge on an emulated Raspberry Pi OS 64-bit (Debian
# bookworm arm64) under qemu-user, from a clean root file system.
#
#   1. host: qemu-user-static + debootstrap (apt-get when missing), binfmt;
#      build (or reuse) build/arm64-root; build the wheel; run every shipped
#      zoo artifact on the host (.venv) for reference outputs.
#   2. root: a venv with the wheel + [onnx,tflite,eeg] + pytest, hypothesis
#      and scipy from PyPI (no librosa, torch or mediapipe under emulation).
#   3. root (chroot, /proc /sys /dev bind-mounted, always unmounted):
#      kernel warmup; the kernel parity tests with the JIT and the NumPy
#      twins; speech kernels JIT vs twin (librosa-free); every
#      shipped artifact (.onnx in onnxruntime, .tflite in ai-edge-litert)
#      against the host's outputs on the same inputs; `affectedge run`;
#      `affectedge profiles detect` (live and over a fake Pi 4 root).
#   4. a summary; timings inside the root are emulated, never Pi figures.
#      Exit status 1 when a step failed.
#
# Settings (environment or make variables):
#   ARM64_ARCH=arm64|armhf   armhf: 32-bit Pi OS; Debian's python3-numpy and the NumPy
#                            twins only (no llvmlite/onnxruntime/LiteRT wheels for armv7l)
#   ARM64_ROOT=DIR           root file system (default build/<arch>-root)
#   ARM64_REBUILD=1          rebuild the root even when a complete one exists
#   ARM64_MIRROR=URL         Debian mirror (default: the host's apt sources)
#   ARM64_DATA=DIR           the data folder (default ../shared/data)
#   ARM64_WAV=FILE           16 kHz WAV for `affectedge run`
#   ARM64_EEG_CSV=FILE       EEG recording used when BrainFlow cannot run here
#   ARM64_PYTEST_K=EXPR      extra -k deselection for the kernel tests
#   ARM64_ZOO_CPUS="A B"     qemu CPU models for the zoo check (default "cortex-a72 cortex-a76":
#                            a Pi 4's and a Pi 5's cores)
#   HOST_VENV=DIR            host venv with affectedge + onnx + tflite (default .venv, make test)
#
# Needs root (debootstrap, chroot, mount). Run from anywhere.

set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCH=${ARM64_ARCH:-arm64}
SUITE=bookworm
BUILD=$REPO/build
ROOT=${ARM64_ROOT:-$BUILD/$ARCH-root}
ROOT=$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)
WHEELS=$BUILD/wheels
OUTDIR=$BUILD/$ARCH-check
DATA=${ARM64_DATA:-$REPO/../shared/data}
WAV=${ARM64_WAV:-$DATA/speech/emodb/wav/03a05Wa.wav}
EEG_CSV=${ARM64_EEG_CSV:-$DATA/eeg/muse_mentalstate/subjecta-neutral-1.csv}
HOST_VENV=${HOST_VENV:-$REPO/.venv}
PYTEST_K=${ARM64_PYTEST_K:-}
ZOO_IDS="speech-emotion face-expression eeg-valence-arousal eeg-mental-state"
KERNEL_TESTS="tests/test_spectral.py tests/test_silence.py tests/test_eeg.py tests/test_graph.py"
IN=/opt/affectedge          # everything of ours inside the root
STAMP=$ROOT/.affectedge-root

case "$ARCH" in
  arm64) QEMU=aarch64; UNAME=aarch64; GENERIC=linux-aarch64-generic
         INCLUDE=python3,python3-venv,ca-certificates ;;
  armhf) QEMU=arm; UNAME=armv7l; GENERIC=linux-armv7-generic
         INCLUDE=python3,python3-venv,ca-certificates,python3-numpy,python3-scipy,python3-pytest,python3-hypothesis ;;
  *) echo "ARM64_ARCH=$ARCH: use arm64 or armhf" >&2; exit 2 ;;
esac
if [ "$(uname -m)" = "$UNAME" ]; then WHERE="(native $UNAME)"; else WHERE="(emulated, qemu-user)"; fi


if [ "$(id -u)" != 0 ]; then
  echo "arm64-check needs root (debootstrap, chroot, mount): sudo make arm64-check" >&2
  exit 2
fi
mkdir -p "$BUILD" "$OUTDIR" "$WHEELS"
exec 9>"$BUILD/.$ARCH-check.lock"
if ! flock -n 9; then echo "another arm64-check is using $ROOT" >&2; exit 2; fi

# ----------------------------------------------------------------- bookkeeping
T0=$(date +%s)
RESULTS=()       # "STATUS|seconds|label|where|detail"
FAILED=0
STEP_PID=""

log() { printf '\n== %s\n' "$*"; }
detail() { printf '%s' "$*" > "$OUTDIR/.detail"; }

# step LABEL WHERE FUNCTION: run FUNCTION (set -e), time it, record PASS/FAIL/SKIP (exit 77).
step() {
  local label=$1 where=$2 fn=$3 s rc status
  log "$label $where"
  : > "$OUTDIR/.detail"
  s=$(date +%s)
  # in its own process group (job control on for the fork), waited for interruptibly: a
  # signal to this script ends the step's whole tree at once (cleanup), then unmounts
  set -m
  ( set -e; "$fn" ) < /dev/null &
  STEP_PID=$!
  set +m
  wait "$STEP_PID"
  rc=$?
  STEP_PID=""
  case $rc in 0) status=PASS ;; 77) status=SKIP ;; *) status=FAIL; FAILED=1 ;; esac
  RESULTS+=("$status|$(( $(date +%s) - s ))|$label|$where|$(cat "$OUTDIR/.detail")")
  echo "-- $status: $label ($(( $(date +%s) - s )) s)"
  return 0
}

last_failed() { [ "${RESULTS[${#RESULTS[@]}-1]%%|*}" = FAIL ]; }

mounts_under() {  # mount points at or below $ROOT, deepest first
  awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_all() {
  local m
  for m in $(mounts_under); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "warning: could not unmount $m" >&2
  done
}

cleanup() {
  local rc=$?
  [ -n "$STEP_PID" ] && kill -- -"$STEP_PID" 2>/dev/null
  [ -n "${WARMUP_PID:-}" ] && kill -- -"$WARMUP_PID" 2>/dev/null && sleep 1
  unmount_all
  if [ -n "$(mounts_under)" ]; then echo "warning: still mounted under $ROOT:" $(mounts_under) >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a command inside the root with a clean environment (+ pip settings).
ROOT_ENV=()
inroot() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=$IN/venv/bin:/usr/local/bin:/usr/bin:/bin "${ROOT_ENV[@]}" "$@"
}

# ----------------------------------------------------------------- host steps
host_deps() {
  local missing="" p
  for p in qemu-user-static debootstrap; do
    [ "$WHERE" != "(emulated, qemu-user)" ] && [ "$p" = qemu-user-static ] && continue
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  fi
  if [ "$WHERE" = "(emulated, qemu-user)" ]; then
    local bm=/proc/sys/fs/binfmt_misc
    [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm"
    if [ ! -e "$bm/qemu-$QEMU" ]; then
      # no systemd-binfmt / binfmt-support service ran: register from qemu-user-static's own file
      if [ -f "/usr/lib/binfmt.d/qemu-$QEMU.conf" ]; then
        grep -v '^#' "/usr/lib/binfmt.d/qemu-$QEMU.conf" > "$bm/register"
      else
        update-binfmts --enable "qemu-$QEMU"
      fi
    fi
    grep -q '^enabled' "$bm/qemu-$QEMU"
    # F (fix binary): the interpreter is opened now, so the root needs no copy of it
    grep -q '^flags: .*F' "$bm/qemu-$QEMU" || { echo "binfmt qemu-$QEMU lacks the F flag" >&2; return 1; }
    detail "$(sed -n 's/^interpreter //p' "$bm/qemu-$QEMU"), $(dpkg-query -W -f='${Version}' qemu-user-static)"
  fi
}

debian_mirror() {
  if [ -n "${ARM64_MIRROR:-}" ]; then echo "$ARM64_MIRROR"; return; fi
  local m
  # deb822 (*.sources): the URIs of a stanza whose Suites include bookworm, not -security
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$SUITE" '
        /^[[:space:]]*$/ { if (u != "" && suites ~ ("(^| )" s "( |$)")) { print u; exit } u=""; suites=""; next }
        /^URIs:/ { u=$2 } /^Suites:/ { $1=""; suites=$0 }
        END { if (u != "" && suites ~ ("(^| )" s "( |$)")) print u }' | grep -v security | head -1)
  if [ -z "$m" ]; then  # one-line format
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v s="$SUITE" '$1 == "deb" && $0 ~ (" " s " ") { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' |
        grep -v security | head -1)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

build_root() {
  local mirror want
  mirror=$(debian_mirror)
  want="$ARCH $SUITE minbase $INCLUDE"
  if [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$want" ] && [ "${ARM64_REBUILD:-0}" != 1 ]; then
    echo "reusing $ROOT ($(sed -n 2p "$STAMP"))"
    detail "reused ${ROOT#$REPO/}"
    return 0
  fi
  unmount_all
  if [ -n "$(mounts_under)" ]; then echo "refusing to delete $ROOT: mounts remain" >&2; return 1; fi
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  echo "debootstrap --arch=$ARCH --variant=minbase --include=$INCLUDE $SUITE $ROOT $mirror"
  debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$mirror" \
    > "$OUTDIR/debootstrap.log" 2>&1 || { tail -20 "$OUTDIR/debootstrap.log"; return 1; }
  tail -2 "$OUTDIR/debootstrap.log"
  chroot "$ROOT" /usr/bin/python3 -c 'import platform; print("root python", platform.python_version(), platform.machine())'
  printf '%s\nbuilt %s from %s\n' "$want" "$(date -u +%FT%TZ)" "$mirror" > "$STAMP"
  detail "built ${ROOT#$REPO/} from $mirror"
}

build_wheel() {
  local py=python3
  [ -x "$HOST_VENV/bin/python" ] && py=$HOST_VENV/bin/python
  rm -f "$WHEELS"/affectedge-*.whl
  (cd "$REPO" && "$py" -m pip wheel . --no-deps -w "$WHEELS" -q --disable-pip-version-check)
  WHEEL=$(ls "$WHEELS"/affectedge-*.whl)
  # content digest (zip timestamps vary between builds): reinstall only when the content changed
  WHEEL_DIGEST=$("$py" - "$WHEEL" <<'EOF'
import hashlib, sys, zipfile
h = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in sorted(z.namelist()):
        h.update(n.encode() + b"\0" + hashlib.sha256(z.read(n)).digest())
print(h.hexdigest()[:16])
EOF
)
  printf 'WHEEL=%q\nWHEEL_DIGEST=%q\n' "$WHEEL" "$WHEEL_DIGEST" > "$OUTDIR/.wheel"
  echo "$(basename "$WHEEL") content $WHEEL_DIGEST"
  detail "$(basename "$WHEEL") ($WHEEL_DIGEST)"
}

host_reference() {  # the zoo artifacts' outputs on the host, for the same inputs inside
  if [ ! -x "$HOST_VENV/bin/python" ]; then
    echo "no $HOST_VENV: the zoo check compares with the host's outputs; set up the host first (make test)"
    return 1
  fi
  (cd /tmp && "$HOST_VENV/bin/python" "$REPO/scripts/arm64/zoo.py" reference --out "$OUTDIR/reference.npz" --data "$DATA") 2>&1 |
    grep -v 'XNNPACK delegate' | tee "$OUTDIR/.reference"
  detail "$(grep -c '^  ' "$OUTDIR/.reference") artifacts on $(grep -o '[0-9]* real inputs' "$OUTDIR/.reference" | awk '{s+=$1} END {print s+0}') real + zero + random inputs, $(tail -1 "$OUTDIR/.reference" | sed 's/.*(\(.*\))/\1/')"
  [ -s "$OUTDIR/reference.npz" ]
}

# ----------------------------------------------------------------- into the root
pip_settings() {
  # pip's configuration files, the CA bundle and every local path they name, so that the
  # root reaches the same index as the host (the internet is closed here but PyPI is not)
  local f v paths=()
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
  for f in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
    [ -f "$f" ] || continue
    mkdir -p "$ROOT/root/$(dirname "${f#$HOME/}")" "$ROOT$(dirname "$f")"
    case "$f" in "$HOME"/*) cp "$f" "$ROOT/root/${f#$HOME/}" ;; *) cp "$f" "$ROOT$f" ;; esac
    paths+=($(sed -n 's/^[^#=]*=//p' "$f"))
  done
  while IFS= read -r v; do paths+=(${v#*=}); done < <(pass_env)
  for v in "${paths[@]}"; do
    v=${v#file://}
    case "$v" in /*) ;; *) continue ;; esac
    case "$v" in */simple|*/simple/) v=$(dirname "${v%/}") ;; esac  # a local index links to ../../files
    [ -e "$v" ] || continue
    if [ -d "$v" ]; then
      mkdir -p "$ROOT$v"; mountpoint -q "$ROOT$v" || { mount --bind "$v" "$ROOT$v" && mount -o remount,bind,ro "$ROOT$v"; }
    else
      mkdir -p "$ROOT$(dirname "$v")"; cp "$v" "$ROOT$v"
    fi
  done
}

quiet_pip() { grep -v "^WARNING: Location '" || true; }  # local indexes lacking a project

pass_env() { env | grep -E '^(PIP_[A-Z_]+|https?_proxy|no_proxy|HTTPS?_PROXY|NO_PROXY)=' || true; }

standin_cpuinfo() {
  # qemu-user (7.2, bookworm) shows the host's x86 /proc/cpuinfo to the guest; onnxruntime's
  # cpuinfo library then segfaults on import. Stand in a generic board's: Cortex-A72 (arm64)
  # or Cortex-A7 (armhf) blocks, one per host CPU, no Model line (no board is claimed).
  local i n=$(nproc)
  for i in $(seq 0 $((n - 1))); do
    if [ "$ARCH" = arm64 ]; then
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
    else
      printf 'processor\t: %d\nmodel name\t: ARMv7 Processor rev 5 (v7l)\nBogoMIPS\t: 38.40\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xc07\nCPU revision\t: 5\n\n' "$i"
    fi
  done
}

mount_root() {
  # /proc and a read-only /sys as on the device. /dev is a private tmpfs with the usual nodes,
  # not a bind of the host's: a mount left behind by a killed run then cannot let
  # `rm -rf build` (make clean) reach the host's device nodes.
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mountpoint -q "$ROOT/sys" || { mount --bind /sys "$ROOT/sys" && mount -o remount,bind,ro "$ROOT/sys"; }
  if ! mountpoint -q "$ROOT/dev"; then
    mount -t tmpfs -o mode=755,nosuid dev "$ROOT/dev"
    local n
    for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
      set -- $n; mknod -m 666 "$ROOT/dev/$1" c "$2" "$3"
    done
    ln -s /proc/self/fd "$ROOT/dev/fd"; ln -s fd/0 "$ROOT/dev/stdin"; ln -s fd/1 "$ROOT/dev/stdout"; ln -s fd/2 "$ROOT/dev/stderr"
    mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts" && ln -s pts/ptmx "$ROOT/dev/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
  fi
  if [ "$WHERE" = "(emulated, qemu-user)" ]; then
    standin_cpuinfo > "$OUTDIR/cpuinfo"
    mount --bind "$OUTDIR/cpuinfo" "$ROOT/proc/cpuinfo"
  fi
  mkdir -p "$ROOT$IN/shared/data"
  if [ -d "$DATA" ]; then
    mount --bind "$DATA" "$ROOT$IN/shared/data" && mount -o remount,bind,ro "$ROOT$IN/shared/data"
  fi
  pip_settings
  detail "proc, sys (ro), private dev, data (ro)$([ "$WHERE" = "(emulated, qemu-user)" ] && echo ", stand-in /proc/cpuinfo")"
}

copy_in() {  # what each run refreshes: tests, check scripts, artifacts, inputs, the fake Pi 4 root
  rm -rf "$ROOT$IN/repo" "$ROOT$IN/check" "$ROOT$IN/artifacts" "$ROOT$IN/inputs" "$ROOT$IN/roots"
  mkdir -p "$ROOT$IN/repo" "$ROOT$IN/check" "$ROOT$IN/inputs" "$ROOT$IN/roots" "$ROOT$IN/wheels"
  cp -r "$REPO/tests" "$REPO/pyproject.toml" "$ROOT$IN/repo/"
  find "$ROOT$IN/repo" -name __pycache__ -prune -exec rm -rf {} +
  cp "$REPO"/scripts/arm64/*.py "$ROOT$IN/check/"
  [ -f "$OUTDIR/reference.npz" ] && cp "$OUTDIR/reference.npz" "$ROOT$IN/check/"
  # qemu itself, to start a process on a chosen CPU model (check_zoo)
  [ "$WHERE" = "(emulated, qemu-user)" ] && cp "$(command -v qemu-$QEMU-static)" "$ROOT/usr/local/bin/"
  [ -f "$WAV" ] && cp "$WAV" "$ROOT$IN/inputs/"
  [ -f "$EEG_CSV" ] && cp "$EEG_CSV" "$ROOT$IN/inputs/"
  local fx=$REPO/tests/fixtures/roots/raspberry-pi-4
  if [ -d "$fx" ]; then
    cp -r "$fx" "$ROOT$IN/roots/raspberry-pi-4"
  else  # the detection tests' fixture is not in this checkout: a minimal Pi 4 root
    mkdir -p "$ROOT$IN/roots/raspberry-pi-4/proc/device-tree"
    printf 'Raspberry Pi 4 Model B Rev 1.4\0' > "$ROOT$IN/roots/raspberry-pi-4/proc/device-tree/model"
    printf 'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\nHardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' \
      > "$ROOT$IN/roots/raspberry-pi-4/proc/cpuinfo"
  fi
  detail "tests $(du -sh "$ROOT$IN/repo" | awk '{print $1}')$([ -f "$OUTDIR/reference.npz" ] && echo ", host reference $(du -sh "$OUTDIR/reference.npz" | awk '{print $1}')")"
}

install_venv() {
  mkdir -p "$ROOT$IN/wheels" && cp "$WHEEL" "$ROOT$IN/wheels/"
  local w=$IN/wheels/$(basename "$WHEEL") extras="[onnx,tflite,eeg]" tools="pytest hypothesis scipy"
  local want="$WHEEL_DIGEST $extras $tools" venv_opts=""
  [ "$ARCH" = armhf ] && venv_opts=--system-site-packages
  if [ -x "$ROOT$IN/venv/bin/python" ] && [ "$(cat "$ROOT$IN/venv/.affectedge-installed" 2>/dev/null)" = "$want" ]; then
    echo "venv up to date (wheel content $WHEEL_DIGEST)"
    detail "reused venv"
    return 0
  fi
  [ -x "$ROOT$IN/venv/bin/python" ] || inroot python3 -m venv $venv_opts "$IN/venv"
  if [ "$ARCH" = armhf ]; then
    # no llvmlite, onnxruntime, LiteRT or soxr wheels for armv7l on PyPI: the wheel alone,
    # over Debian's numpy, scipy, pytest and hypothesis (the NumPy twins run everything)
    inroot pip install -q --no-compile --no-deps --force-reinstall "$w" 2>&1 | quiet_pip
  else
    # --force-reinstall of our wheel alone (the numba cache is keyed on its files), then the
    # extras and tools (already satisfied after the first run)
    if [ -f "$ROOT$IN/venv/.affectedge-installed" ]; then
      inroot pip install -q --no-compile --no-deps --force-reinstall "$w" 2>&1 | quiet_pip
    fi
    # --no-compile: byte-compiling every installed file under emulation costs minutes;
    # Python compiles what it imports, once
    inroot pip install -q --no-compile "$w$extras" $tools 2>&1 | quiet_pip
  fi
  echo "$want" > "$ROOT$IN/venv/.affectedge-installed"
  inroot pip list 2>/dev/null | grep -iE '^(affectedge|numpy|numba|llvmlite|onnxruntime|ai-edge-litert|brainflow|scipy|pytest) ' | tr -s ' ' | paste -sd ',' - | sed 's/,/, /g'
  detail "$(inroot pip list 2>/dev/null | awk 'tolower($1) ~ /^(numpy|numba|onnxruntime|ai-edge-litert|brainflow)$/ { printf "%s%s %s", sep, $1, $2; sep=", " }')"
}

# ----------------------------------------------------------------- checks inside
start_warmup() {
  WARMUP_PID=""
  [ "$ARCH" = armhf ] && return
  rm -f "$OUTDIR/warmup.rc"
  setsid bash -c '"$@" > "$0/warmup.log" 2>&1; echo $? > "$0/warmup.rc"' "$OUTDIR" \
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=$IN/venv/bin:/usr/bin:/bin \
    "${ROOT_ENV[@]}" timeout --foreground -k 10 1200 affectedge kernels warmup < /dev/null &
  WARMUP_PID=$!
}

check_warmup() {  # (the main shell waited for the background warmup)
  if [ "$ARCH" = armhf ]; then detail "no numba on armhf: NumPy twins"; exit 77; fi
  inroot affectedge kernels info
  tr '\r' '\n' < "$OUTDIR/warmup.log" | grep -v '^warming' | tail -3
  detail "$(tr '\r' '\n' < "$OUTDIR/warmup.log" | sed -n 's/^\(compiled .* s\);.*/\1/p')"
  [ "$(cat "$OUTDIR/warmup.rc" 2>/dev/null)" = 0 ]
}

check_kernel_tests() {
  local jit_env=() k=()
  [ "$ARCH" = armhf ] && jit_env=(AFFECTEDGE_DISABLE_JIT=1)
  [ -n "$PYTEST_K" ] && k=(-k "$(printf '%q' "$PYTEST_K")")
  echo "pytest $KERNEL_TESTS ${k[*]}"
  local rc=0
  inroot "${jit_env[@]}" sh -c "cd $IN/repo && exec timeout --foreground -k 10 1800 python -m pytest -q -p no:cacheprovider -rs \
      --junitxml=/tmp/arm64-kernels.xml $KERNEL_TESTS ${k[*]}" 2>&1 | tail -12 || rc=$?
  cp "$ROOT/tmp/arm64-kernels.xml" "$OUTDIR/kernels.xml"
  python3 "$REPO/scripts/arm64/report.py" junit "$OUTDIR/kernels.xml" | tee "$OUTDIR/.counts" || rc=1
  if grep -q "collection skipped" "$OUTDIR/.counts"; then
    echo "not run here: tests/test_spectral.py, tests/test_silence.py (module-level importorskip('librosa');"
    echo "  librosa is left out of the lean root); the speech kernels are compared JIT vs twin in the next step"
  fi
  detail "$(sed -n 's/^  mode \(jit\|numpy\|no mode\) *\(.*\)/\1: \2/p' "$OUTDIR/.counts" | paste -sd ';' - | sed 's/;/; /g')"
  return $rc
}

check_twins() {
  if [ "$ARCH" = armhf ]; then detail "no JIT on armhf"; exit 77; fi
  inroot python "$IN/check/twins.py" "$IN/shared/data/speech/emodb/wav" | tee "$OUTDIR/.twins"
  detail "$(tail -1 "$OUTDIR/.twins" | sed 's/^twins: //')"
}

check_zoo() {
  if [ "$ARCH" = armhf ]; then detail "no onnxruntime / ai-edge-litert wheels for armv7l on PyPI"; exit 77; fi
  # Under emulation, once per CPU model: qemu's default "max" CPU has every extension (SVE, SME), which
  # no Pi has and which changes the kernels onnxruntime, XNNPACK and OpenBLAS pick. cortex-a72 is a Pi 4's
  # core (no fp16 arithmetic); cortex-a76 a Pi 5's (fp16, dot product): onnxruntime computes fp16 graphs
  # in fp16 there. qemu is started explicitly for that (binfmt always starts "max").
  local cpus=("") cpu rc=0 summary=()
  if [ "$WHERE" = "(emulated, qemu-user)" ]; then read -r -a cpus <<< "${ARM64_ZOO_CPUS:-cortex-a72 cortex-a76}"; fi
  for cpu in "${cpus[@]}"; do
    local pre=() label=native
    if [ -n "$cpu" ]; then pre=(/usr/local/bin/qemu-$QEMU-static -cpu "$cpu"); label=$cpu; fi
    echo "-- $label"
    inroot "${pre[@]}" "$IN/venv/bin/python" "$IN/check/zoo.py" check --reference "$IN/check/reference.npz" \
      $([ -n "$cpu" ] && echo --emulated) 2>&1 | grep -v 'XNNPACK delegate\|skipped: litert' | tee "$OUTDIR/.zoo-$label"
    grep -q '^zoo: .* 0 failed' "$OUTDIR/.zoo-$label" || rc=1
    summary+=("$label: $(tail -1 "$OUTDIR/.zoo-$label" | sed 's/^zoo: //'), worst fp32 |arm64-host| $(grep -o 'max|arm64-host| [0-9.e+-]* on all' "$OUTDIR/.zoo-$label" | awk '{print $2}' | sort -g | tail -1)")
  done
  detail "$(printf '%s; ' "${summary[@]}" | sed 's/; $//')"
  return $rc
}

brainflow_arch() {  # the machine libBoardController.so in the installed brainflow is built for
  inroot python - <<'EOF'
import pathlib, struct
try:
    import brainflow
except ImportError:
    print("not-installed"); raise SystemExit
lib = pathlib.Path(brainflow.__file__).parent / "lib" / "libBoardController.so"
if not lib.is_file():
    print("no-linux-lib"); raise SystemExit
machine = struct.unpack("<H", lib.read_bytes()[18:20])[0]
print({0x3E: "x86_64", 0xB7: "aarch64", 0x28: "arm"}.get(machine, hex(machine)))
EOF
}

check_run() {
  if [ "$ARCH" = armhf ]; then detail "needs onnxruntime"; exit 77; fi
  local wav=$IN/inputs/$(basename "$WAV") eeg="synthetic" bf note=""
  [ -f "$ROOT$wav" ] || { echo "no WAV at $WAV (set ARM64_WAV)"; return 1; }
  bf=$(brainflow_arch)
  echo "brainflow's libBoardController.so: $bf"
  if [ "$bf" != aarch64 ]; then
    # BrainFlow's PyPI wheel (py3-none-any) bundles Linux libraries for x86-64 only
    echo "BrainFlow's synthetic board cannot run on aarch64 from PyPI ($(inroot pip show brainflow 2>/dev/null | sed -n 's/^Version: //p'), library built for $bf):"
    inroot timeout --foreground -k 10 120 affectedge run --audio "$wav" --eeg synthetic --duration 5 --out /tmp/arm64-run-synthetic.jsonl --quiet 2>&1 | tail -1 || true
    [ -f "$EEG_CSV" ] || { echo "no EEG recording at $EEG_CSV (set ARM64_EEG_CSV)"; return 1; }
    eeg=$IN/inputs/$(basename "$EEG_CSV")
    note="; synthetic board unavailable (brainflow lib is $bf), EEG from $(basename "$EEG_CSV")"
  fi
  echo "affectedge run --audio $wav --eeg $eeg --duration 5 --out /tmp/arm64-run.jsonl --quiet"
  local s=$(date +%s)
  inroot timeout --foreground -k 10 300 affectedge run --audio "$wav" --eeg "$eeg" --duration 5 --out /tmp/arm64-run.jsonl --quiet
  local took=$(( $(date +%s) - s ))
  cp "$ROOT/tmp/arm64-run.jsonl" "$OUTDIR/run.jsonl"
  python3 "$REPO/scripts/arm64/report.py" jsonl "$OUTDIR/run.jsonl" --need speech,eeg | tee "$OUTDIR/.run"
  detail "$(grep -E '^  (speech|eeg) ' "$OUTDIR/.run" | sed 's/^ *//; s/;.*//; s/  */ /g' | paste -sd ',' - | sed 's/,/, /g') in ${took} s$note"
  ! grep -q missing "$OUTDIR/.run"
}

check_profiles() {
  if ! inroot affectedge profiles --help >/dev/null 2>&1; then
    echo "skipped: profiles command not available"; detail "skipped: profiles command not available"; exit 77
  fi
  local live fake
  inroot affectedge profiles detect
  live=$(inroot affectedge profiles detect --json | inroot python -c 'import json,sys; print(json.load(sys.stdin)["profile"])')
  inroot affectedge profiles detect --root "$IN/roots/raspberry-pi-4"
  fake=$(inroot affectedge profiles detect --root "$IN/roots/raspberry-pi-4" --json | inroot python -c 'import json,sys; print(json.load(sys.stdin)["profile"])')
  echo "detect: $live (want $GENERIC); --root raspberry-pi-4: $fake (want raspberry-pi-4)"
  detail "detect: $live; --root fake Pi 4: $fake"
  [ "$live" = "$GENERIC" ] && [ "$fake" = raspberry-pi-4 ]
}

# ----------------------------------------------------------------- main
unmount_all  # whatever a killed run left behind
echo "arm64-check: Debian $SUITE $ARCH root ${ROOT#$REPO/} $WHERE; repo $REPO"
HOST="(host)"
step "host packages, binfmt" "$HOST" host_deps
last_failed && { echo "cannot go on without qemu-user-static/debootstrap"; exit 1; }
step "root file system" "$HOST + debootstrap second stage $WHERE" build_root
last_failed && exit 1
step "wheel" "$HOST" build_wheel
last_failed && exit 1
# shellcheck disable=SC1091
[ -f "$OUTDIR/.wheel" ] && . "$OUTDIR/.wheel"
while IFS= read -r v; do ROOT_ENV+=("$v"); done < <(pass_env)
ROOT_ENV+=(PIP_DISABLE_PIP_VERSION_CHECK=1)
# qemu's "max" CPU offers SVE/SME; OpenBLAS then picks its armv9sme kernels, whose float32 GEMM
# leaves spurious overflow/invalid flags under qemu 7.2 (NumPy RuntimeWarnings, results right).
# Pin the Cortex-A72 of a Pi 4 (the stand-in /proc/cpuinfo's core; numba targets it too).
[ "$ARCH" = arm64 ] && [ "$WHERE" = "(emulated, qemu-user)" ] && [ -n "${ARM64_OPENBLAS_CORETYPE-CORTEXA72}" ] &&
  ROOT_ENV+=(OPENBLAS_CORETYPE="${ARM64_OPENBLAS_CORETYPE-CORTEXA72}")
step "mounts" "$HOST" mount_root
last_failed && exit 1
step "venv: wheel + extras from PyPI" "$WHERE" install_venv
last_failed && exit 1
[ "$ARCH" = arm64 ] && step "zoo artifacts' outputs on the host (reference)" "$HOST" host_reference
step "copy in tests, checks, artifacts, inputs" "$HOST" copy_in
last_failed && exit 1
# The warmup compiles (and caches) every kernel in the background while the tests run, each
# on one of the host's cores; both fill the same cache. `affectedge run` needs it done.
start_warmup
step "kernel parity tests (JIT and NumPy twins)" "$WHERE" check_kernel_tests
[ -n "$WARMUP_PID" ] && { wait "$WARMUP_PID"; WARMUP_PID=""; }
step "kernel warmup (numba compile, beside the tests)" "$WHERE" check_warmup
step "speech kernels, JIT vs NumPy twin (EmoDB)" "$WHERE" check_twins
step "zoo models: onnxruntime and ai-edge-litert" "$WHERE" check_zoo
step "affectedge run (file + EEG, 5 s)" "$WHERE" check_run
step "affectedge profiles detect" "$WHERE" check_profiles

# ----------------------------------------------------------------- summary
TOTAL=$(( $(date +%s) - T0 ))
printf '\n== arm64-check summary: Debian %s %s %s\n' "$SUITE" "$ARCH" "$WHERE"
echo "   Timings marked emulated ran under qemu-user on this host's CPU: they are not Raspberry Pi figures."
for r in "${RESULTS[@]}"; do
  IFS='|' read -r status secs label where det <<< "$r"
  printf '  %-4s %5ss  %-46s %s\n' "$status" "$secs" "$label" "$where"
  [ -n "$det" ] && printf '              %s\n' "$det"
done
printf '  total %dm%02ds; logs and outputs in %s\n' $((TOTAL / 60)) $((TOTAL % 60)) "${OUTDIR#$REPO/}"
if [ "$FAILED" = 0 ]; then echo "arm64-check: PASS"; else echo "arm64-check: FAIL"; fi
exit $FAILED
