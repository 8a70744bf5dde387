#!/usr/bin/env bash
# A two-node Slurm cluster on this machine, for the tests: munge + slurmctld + one slurmd per node
# from Debian's packages (munge, slurmctld, slurmd, slurm-client; iproute2 and util-linux for the
# namespaces; .ci/run installs them, this script installs nothing). Run as root.
#
#   tests/slurm/cluster.sh start [STATE_DIR]   namespaces, /etc/slurm/slurm.conf, daemons; wait
#   tests/slurm/cluster.sh stop  [STATE_DIR]   stop what `start` started (also a half-started one)
#   tests/slurm/cluster.sh exec CMD [ARG...]   run CMD on the login node (lbnode1), e.g.
#                                              `cluster.sh exec snakemake --profile profiles/slurm ...`
#   tests/slurm/cluster.sh status
#   tests/slurm/cluster.sh clear-dead          remove what a test cluster whose daemons all died left
#                                              (`start` does it first too)
#
# Each node is a network namespace (liquidbench-n1, liquidbench-n2) joined by a veth pair with the
# addresses 10.231.14.1 and 10.231.14.2 (in those namespaces only: the machine's own network is not
# touched), and UTS and mount namespaces per process tree giving it its host name (lbnode1,
# lbnode2) and an /etc/hosts naming both nodes (a bind mount of /run/liquidbench-slurm/hosts); the rest of the
# file system is shared, as on a cluster. munged runs once (its unix
# socket is reached from every namespace); slurmctld and the first slurmd run on lbnode1, which is
# also the login node where sbatch/squeue/snakemake run (`cluster.sh exec`); the second slurmd on
# lbnode2. Every daemon is started in the foreground under setsid and stopped by the process id
# recorded in STATE_DIR; every namespace and file created is recorded there too, so that `stop`
# (and a start that fails half-way) removes exactly what was made.
#
# The configuration is for tests only (one partition, no accounting database, no cgroups); it is
# not what a real site runs. slurm.conf must live at /etc/slurm/slurm.conf: `srun` inside a batch
# job reads the default location and ignores SLURM_CONF. Without slurmdbd there is no `sacct`, so
# jobs stay visible to `squeue`/`scontrol` for MinJobAge seconds after they end.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# liquidbench test cluster"
# The hosts file of the nodes, and where the running cluster keeps its state (for `exec`, `status`
# and a `stop` without STATE_DIR).
RUN=/run/liquidbench-slurm
STATE=${LIQUIDBENCH_SLURM_STATE:-$(cat "$RUN/state" 2>/dev/null || echo /tmp/liquidbench-slurm)}
NODES=(lbnode1 lbnode2)
NETNS=(liquidbench-n1 liquidbench-n2)
ADDRS=(10.231.14.1 10.231.14.2)
# CPUs each node declares: both nodes share this machine's cores (the test jobs are small).
NODE_CPUS=${LIQUIDBENCH_SLURM_NODE_CPUS:-4}
export PATH=$PATH:/usr/sbin:/sbin

die() { echo "cluster.sh: $*" >&2; exit 1; }

need() {
    for cmd in munged mungekey slurmctld slurmd sinfo squeue scontrol sbatch srun ip nsenter unshare setsid; do
        command -v "$cmd" >/dev/null 2>&1 ||
            die "'$cmd' not found: install the Debian packages munge slurmctld slurmd slurm-client iproute2 util-linux (.ci/run does)"
    done
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons, namespaces and /etc/slurm/slurm.conf need it)"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# node_argv I: the command prefix that runs a command in node I's network namespace, under its host
# name and with the cluster's /etc/hosts (a private mount namespace; the rest of the file system,
# /sys/fs/cgroup included, stays the machine's). Each part execs the next, so a background job's
# process id is the command's.
node_argv() {
    argv=(nsenter "--net=/run/netns/${NETNS[$1]}" unshare --mount --uts
          sh -c 'mount --bind "$1" /etc/hosts && hostname "$0" && shift && exec "$@"'
          "${NODES[$1]}" "$RUN/hosts")
}

on_node() {
    node_argv "$1"
    shift
    exec "${argv[@]}" "$@"
}

# daemon NAME I CMD...: start CMD on node I in the foreground of a new session, record its pid.
daemon() {
    local name=$1 i=$2
    shift 2
    node_argv "$i"
    (exec setsid "${argv[@]}" "$@") </dev/null >"$STATE/$name.out" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already running and answers
    fi
    [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    touch "$STATE/munged.ours"  # before starting: a failure from here on stops it again
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

make_network() {
    local i
    for i in 0 1; do
        ip netns add "${NETNS[$i]}"
        echo "${NETNS[$i]}" >>"$STATE/netns"
        ip -n "${NETNS[$i]}" link set lo up
    done
    {
        echo "127.0.0.1 localhost"
        echo "${ADDRS[0]} ${NODES[0]}"
        echo "${ADDRS[1]} ${NODES[1]}"
    } >"$RUN/hosts"
    # The veth pair is created in the first namespace and its peer moved to the second: no
    # interface of the machine's own namespace is involved.
    ip -n "${NETNS[0]}" link add lb0 type veth peer name lb1 netns "${NETNS[1]}"
    for i in 0 1; do
        ip -n "${NETNS[$i]}" addr add "${ADDRS[$i]}/24" dev "lb$i"
        ip -n "${NETNS[$i]}" link set "lb$i" up
    done
}

write_conf() {
    local mem
    # Leave the machine some memory; jobs ask for a few GB at most in the tests.
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.5}' /proc/meminfo)
    install -d -m 0755 /etc/slurm "$STATE/ctld" "$STATE/d-${NODES[0]}" "$STATE/d-${NODES[1]}"
    cat >"$CONF.tmp" <<EOF
$MARK (tests/slurm/cluster.sh); removed by 'cluster.sh stop'
ClusterName=liquidbench
SlurmctldHost=${NODES[0]}(${ADDRS[0]})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d-%n
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd-%n.pidfile
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Both nodes declare NODE_CPUS CPUs whatever this machine has (they share its cores).
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# No slurmdbd: finished jobs must stay in slurmctld long enough for squeue-based status checks.
MinJobAge=3600
KillWait=15
InactiveLimit=0
SchedulerParameters=sched_interval=2
NodeName=${NODES[0]} NodeAddr=${ADDRS[0]} CPUs=$NODE_CPUS RealMemory=$mem State=UNKNOWN
NodeName=${NODES[1]} NodeAddr=${ADDRS[1]} CPUs=$NODE_CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    touch "$STATE/conf.ours"
}

# A test cluster whose daemons all died without `stop` (its test session or the machine was killed)
# leaves its namespaces, slurm.conf and $RUN behind, and they would refuse every later start. Its
# state directory, named in $RUN/state, records exactly what it made: remove that, as `stop` would.
# Nothing is cleared while any daemon it recorded is still alive.
clear_dead() {
    [[ -f $RUN/state ]] || return 0
    local old name
    old=$(cat "$RUN/state")
    [[ -d $old ]] || return 0
    for name in slurmctld slurmd-1 slurmd-2; do
        ! pid_alive "$old/$name.pid" || return 0
    done
    [[ -f $old/netns || -f $old/conf.ours || -f $old/munged.ours ]] || return 0
    echo "cluster.sh: clearing a dead test cluster (no daemon of it alive) left in $old"
    (STATE=$old; stop >/dev/null)
}

start() {
    need
    if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd-1.pid" && pid_alive "$STATE/slurmd-2.pid"; then
        echo "cluster.sh: already running (state in $STATE)"
        return
    fi
    # Refuse before starting anything, so that a refused start leaves nothing behind.
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        die "a slurmctld or slurmd not started by this script is running; stop it first"
    fi
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
    fi
    clear_dead
    local ns
    for ns in "${NETNS[@]}"; do
        [[ ! -e /run/netns/$ns ]] || die "network namespace $ns exists already and no dead test cluster's state directory names it (another test cluster? 'cluster.sh stop STATE_DIR' for a running one; 'ip netns del $ns' if nothing uses it)"
    done
    install -d -m 0755 "$STATE" "$RUN"
    STATE=$(cd "$STATE" && pwd)
    echo "$STATE" >"$RUN/state"
    # From here on a failure stops whatever was started.
    trap 'echo "cluster.sh: start failed, stopping what it started" >&2; stop >&2' EXIT
    start_munge
    make_network
    write_conf
    daemon slurmctld 0 slurmctld -D -i
    daemon slurmd-1 0 slurmd -D -N "${NODES[0]}"
    daemon slurmd-2 1 slurmd -D -N "${NODES[1]}"
    local state=""
    for _ in $(seq 120); do
        state=$(on_login sinfo -h -N -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ $state == "idle " ]]; then
            trap - EXIT
            echo "cluster.sh: up, nodes ${NODES[*]} idle (state in $STATE)"
            return
        fi
        [[ $state != *inval* ]] || die "a node was refused (state inval): $(grep -h 'state to INVAL' "$STATE/slurmctld.log" | tail -1)"
        if [[ $state == *down* || $state == *drain* ]]; then
            on_login scontrol update NodeName="${NODES[0]},${NODES[1]}" State=RESUME >/dev/null 2>&1 || true
        fi
        for name in slurmctld slurmd-1 slurmd-2; do
            pid_alive "$STATE/$name.pid" || { tail -20 "$STATE/$name.out" >&2; die "$name exited during start"; }
        done
        sleep 0.5
    done
    echo "--- slurmctld.log" >&2; tail -20 "$STATE/slurmctld.log" >&2 || true
    die "nodes did not become idle within 60 s (last states: '${state:-none}')"
}

on_login() { (on_node 0 "$@"); }

stop_daemon() {
    local pidfile=$1
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop() {
    # Cancel what is left so that no job outlives the cluster, then stop the daemons, then remove
    # the namespaces and files; each step only for what the state directory says was made here.
    if pid_alive "$STATE/slurmctld.pid"; then
        on_login scancel --full --user=root >/dev/null 2>&1 || true
        sleep 1
    fi
    stop_daemon "$STATE/slurmd-2.pid"
    stop_daemon "$STATE/slurmd-1.pid"
    stop_daemon "$STATE/slurmctld.pid"
    if [[ -f $STATE/conf.ours ]]; then
        [[ -f $CONF ]] && grep -qF "$MARK" "$CONF" && rm -f "$CONF"
        rm -f "$STATE/conf.ours"
    fi
    local ns pid
    if [[ -f $STATE/netns ]]; then
        while read -r ns; do
            # Processes left in the namespace (job steps of a killed slurmd) would keep it alive.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        done <"$STATE/netns"
        rm -f "$STATE/netns"
    fi
    if [[ -f $STATE/munged.ours ]]; then
        stop_daemon /run/munge/munged.pid
        rm -f "$STATE/munged.ours"
    fi
    if [[ -f $RUN/state && $(cat "$RUN/state") == "$(cd "$STATE" 2>/dev/null && pwd)" ]]; then
        rm -rf "$RUN"
    fi
    echo "cluster.sh: stopped"
}

case "${1:-}" in
    start) STATE=${2:-$STATE}; start ;;
    stop) STATE=${2:-$STATE}; stop ;;
    exec) shift; [[ $# -gt 0 ]] || die "usage: $0 exec CMD [ARG...]"; on_node 0 "$@" ;;
    status) on_login sinfo -N; on_login squeue ;;
    clear-dead) need; clear_dead ;;
    *) die "usage: $0 start|stop [STATE_DIR] | exec CMD [ARG...] | status | clear-dead" ;;
esac
