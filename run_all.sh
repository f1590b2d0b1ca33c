#!/usr/bin/env bash
# Regenerates every figure into results/figures/ (and records in results/figures/MANIFEST.json
# which experiment directory produced each), by running the experiment scripts listed in DATA
# one after the other, on the bundled target.
#
#   sudo ./run_all.sh              # every experiment with its defaults (tens of minutes)
#   sudo ./run_all.sh --quick      # every experiment in its CI size (a few minutes)
#   sudo ./run_all.sh --only latency,throughput [--quick]
#   ./run_all.sh --list            # what would run
#   TESTBED_RESULTS=DIR sudo -E ./run_all.sh --quick   # runs and figures under DIR instead
#
# Works as root or through sudo; uses the repository's .venv/bin/python when it exists (as
# experiments/_env.py does), else python3. Exits non-zero if any experiment failed (the others
# still run), after printing where the figures and the manifest are.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# One line per experiment: NAME  SCRIPT  FIGURES  [EXTRA ARGS...]  (figures comma-separated).
DATA=(
  "failover     experiments/failover.py     failover"
  "latency      experiments/latency.py      latency,latency_first_packet"
  "overhead     experiments/overhead.py     overhead"
  "throughput   experiments/throughput.py   throughput"
  "resources    experiments/resources.py    resources"
  "lease_sweep  experiments/lease_sweep.py  lease_sweep"
  "snapshot     experiments/snapshot.py     snapshot"
  "store_failure experiments/store_failure.py store_failure"
)

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=()
ONLY=""
LIST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=(--quick) ;;
    --only) ONLY="${2:-}"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --list) LIST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_all.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
  shift
done

if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi

selected() {  # is experiment $1 in --only (or is there no --only)?
  [ -z "$ONLY" ] && return 0
  case ",$ONLY," in *",$1,"*) return 0 ;; esac
  return 1
}

if [ -n "$ONLY" ]; then
  for name in ${ONLY//,/ }; do
    found=0
    for line in "${DATA[@]}"; do set -- $line; [ "$1" = "$name" ] && found=1; done
    [ $found = 1 ] || { echo "run_all.sh: --only: no experiment named $name" >&2; exit 64; }
  done
fi

if [ $LIST = 1 ]; then
  for line in "${DATA[@]}"; do
    set -- $line
    selected "$1" && echo "$1: $PYTHON $2 ${*:4} ${QUICK[*]:-}  -> results/figures/{$3}.png"
  done
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "run_all.sh: needs root (Mininet makes network namespaces); run it with sudo" >&2
  exit 77
fi

cd "$REPO" || exit 70
RESULTS="${TESTBED_RESULTS:-$REPO/results}"     # the experiments read the same variable
export TESTBED_RESULTS="$RESULTS"
mkdir -p "$RESULTS/figures"
LOG_DIR="$RESULTS/run_all-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOG_DIR"
START=$(date +%s)
FAILED=()
TOTAL=0
for line in "${DATA[@]}"; do set -- $line; selected "$1" && TOTAL=$((TOTAL + 1)); done

N=0
for line in "${DATA[@]}"; do
  set -- $line
  name=$1 script=$2 figures=$3
  shift 3
  selected "$name" || continue
  N=$((N + 1))
  t0=$(date +%s)
  echo "=== [$N/$TOTAL] $name: $PYTHON $script $* ${QUICK[*]:-}  (elapsed $(( t0 - START )) s; log $LOG_DIR/$name.log)"
  "$PYTHON" "$script" "$@" "${QUICK[@]}" 2>&1 | tee "$LOG_DIR/$name.log"
  status=${PIPESTATUS[0]}
  t1=$(date +%s)
  missing=""
  for fig in ${figures//,/ }; do
    [ -s "$RESULTS/figures/$fig.png" ] && [ "$RESULTS/figures/$fig.png" -nt "$LOG_DIR" ] || missing="$missing $fig.png"
  done
  if [ "$status" != 0 ]; then
    echo "=== $name FAILED (exit $status) after $(( t1 - t0 )) s"
    FAILED+=("$name")
  elif [ -n "$missing" ]; then
    echo "=== $name did not produce:$missing"
    FAILED+=("$name")
  else
    echo "=== $name done in $(( t1 - t0 )) s"
  fi
done

END=$(date +%s)
echo
echo "run_all.sh: $TOTAL experiments in $(( END - START )) s${QUICK:+ (quick mode)}"
echo "figures:  $RESULTS/figures/"
echo "manifest: $RESULTS/figures/MANIFEST.json"
echo "logs:     $LOG_DIR/"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}" >&2
  exit 1
fi
exit 0
