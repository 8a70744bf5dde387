#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests: munge + slurmctld + slurmd from
# Debian's packages (munge, slurmctld, slurmd, slurm-client; .ci/run installs them, this script
# installs nothing). Run as root.
#
#   tests/slurm/cluster.sh start [STATE_DIR]   write /etc/slurm/slurm.conf, start the daemons, wait
#   tests/slurm/cluster.sh stop  [STATE_DIR]   stop the daemons started by `start`, remove the conf
#   tests/slurm/cluster.sh status
#
# The configuration is for tests only (one partition, no accounting database, no cgroups); it is
# not what a real site runs. slurm.conf must live at /etc/slurm/slurm.conf: `srun` inside a batch
# job reads the default location and ignores SLURM_CONF. Without slurmdbd there is no `sacct`, so
# jobs stay visible to `squeue`/`scontrol` for MinJobAge seconds after they end.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# liquidbench test cluster"
STATE=${2:-${LIQUIDBENCH_SLURM_STATE:-/tmp/liquidbench-slurm}}

die() { echo "cluster.sh: $*" >&2; exit 1; }

need() {
    for cmd in munged mungekey slurmctld slurmd sinfo squeue scontrol sbatch srun; do
        command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null 2>&1 ||
            die "'$cmd' not found: install the Debian packages munge slurmctld slurmd slurm-client (.ci/run does)"
    done
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons and /etc/slurm/slurm.conf need it)"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already running and answers
    fi
    [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"  # started here: `stop` stops it again
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # Leave the machine some memory; jobs ask for a few GB at most in the tests.
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.75}' /proc/meminfo)
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
    fi
    install -d -m 0755 /etc/slurm "$STATE" "$STATE/ctld" "$STATE/d"
    cat >"$CONF.tmp" <<EOF
$MARK (tests/slurm/cluster.sh); removed by 'cluster.sh stop'
ClusterName=liquidbench
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# No slurmdbd: finished jobs must stay in slurmctld long enough for squeue-based status checks.
MinJobAge=3600
KillWait=15
InactiveLimit=0
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start() {
    need
    if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid"; then
        echo "cluster.sh: already running (state in $STATE)"
        return
    fi
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        die "a slurmctld or slurmd not started by this script is running; stop it first"
    fi
    install -d -m 0755 "$STATE"
    start_munge
    write_conf
    /usr/sbin/slurmctld -c -i
    /usr/sbin/slurmd
    local host state
    host=$(hostname -s)
    for _ in $(seq 120); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        if [[ $state == idle* ]]; then
            echo "cluster.sh: up, node $host idle (state in $STATE)"
            return
        fi
        if [[ $state == down* || $state == drain* ]]; then
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
        fi
        sleep 0.5
    done
    echo "--- slurmctld.log" >&2; tail -20 "$STATE/slurmctld.log" >&2 || true
    echo "--- slurmd.log" >&2; tail -20 "$STATE/slurmd.log" >&2 || true
    die "node $host did not become idle within 60 s (last state: '${state:-none}')"
}

stop_daemon() {
    local pidfile=$1
    pid_alive "$pidfile" || return 0
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    # Cancel what is left so that no job outlives the cluster, then stop the daemons.
    if pid_alive "$STATE/slurmctld.pid"; then
        scancel --full --user=root >/dev/null 2>&1 || true
    fi
    stop_daemon "$STATE/slurmd.pid"
    stop_daemon "$STATE/slurmctld.pid"
    if [[ -f $CONF ]] && grep -qF "$MARK" "$CONF"; then
        rm -f "$CONF"
    fi
    if [[ -f $STATE/munged.ours ]]; then
        stop_daemon /run/munge/munged.pid
        rm -f "$STATE/munged.ours"
    fi
    echo "cluster.sh: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) die "usage: $0 start|stop|status [STATE_DIR]" ;;
esac
