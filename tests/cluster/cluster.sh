#!/usr/bin/env bash
# A real, single-node SLURM cluster plus sshd on loopback, for irq's cluster tests.
#
#   bash tests/cluster/cluster.sh up        install (if missing), configure, start, wait, print env
#   bash tests/cluster/cluster.sh down      stop every daemon this script started
#   bash tests/cluster/cluster.sh status    what runs, sinfo, and the env values
#   bash tests/cluster/cluster.sh env       print STATE_DIR/env (after a successful `up`)
#   helpers for tests: stop-sshd, start-sshd, start-sshd-mfa, stop-sshd-mfa (a second sshd
#                      that asks for a one-time code), restart-slurmctld, stop-slurmctld,
#                      start-slurmctld, restart-slurmdbd
#
# Needs root on Debian 12 (no systemd required). See docs/testing.md.
#
# Settings (environment):
#   IRQ_CLUSTER_DIR       state directory (config, logs, pids, keys)   [/var/tmp/irq-test-cluster]
#   IRQ_CLUSTER_SSH_PORT  sshd port on 127.0.0.1                        [2222]
#   IRQ_CLUSTER_USER      test user                                     [irqtest]
#   IRQ_CLUSTER_NAME      SLURM ClusterName                             [loopback]
#   IRQ_CLUSTER_VENV      job Python venv                               [/opt/irq-test-cluster/venv]
#   IRQ_CLUSTER_REPOS     bare git repositories for tests               [/srv/irq-test/repos]
#   IRQ_CLUSTER_NO_INSTALL=1  never call apt-get (fail if something is missing)

set -euo pipefail
umask 022

STATE_DIR=${IRQ_CLUSTER_DIR:-/var/tmp/irq-test-cluster}
SSH_PORT=${IRQ_CLUSTER_SSH_PORT:-2222}
MFA_PORT=${IRQ_CLUSTER_MFA_PORT:-2223}
TEST_USER=${IRQ_CLUSTER_USER:-irqtest}
CLUSTER_NAME=${IRQ_CLUSTER_NAME:-loopback}
VENV=${IRQ_CLUSTER_VENV:-/opt/irq-test-cluster/venv}
REPOS_DIR=${IRQ_CLUSTER_REPOS:-/srv/irq-test/repos}

PYTHON_MODULE=python/3.10.13-fasrc01
CUDA_MODULE=cuda/11.8.0-fasrc01
QOS_NAME=twojobs
ACCOUNT_NAME=irq
DB_NAME=irq_slurm_acct
DB_USER=irqslurm
DB_PASS=irqslurm-loopback-only

ETC=$STATE_DIR/etc
RUN=$STATE_DIR/run
LOG=$STATE_DIR/log
SPOOL=$STATE_DIR/spool
SSH_DIR=$STATE_DIR/ssh
MODULEPATH_DIR=$STATE_DIR/modulefiles
SLURM_CONF_FILE=$ETC/slurm.conf
CLIENT_KEY=$SSH_DIR/id_ed25519
HOST_KEY=$SSH_DIR/ssh_host_ed25519_key
KNOWN_HOSTS=$SSH_DIR/known_hosts
SSHD_CONFIG=$SSH_DIR/sshd_config
ENV_FILE=$STATE_DIR/env
MFA_DIR=$STATE_DIR/mfa
MFA_SSHD_CONFIG=$SSH_DIR/sshd_mfa_config
PAM_SSHD=/etc/pam.d/sshd
SSH_CLIENT_CONFIG=$SSH_DIR/ssh_config

PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server openssh-server
          openssh-client lmod git python3 python3-venv procps)

NODE=$(hostname -s)
T0=$(date +%s)

# ---------------------------------------------------------------------------- output helpers
say()  { printf '[cluster %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
warn() { printf '[cluster] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[cluster] ERROR: %s\n' "$1" >&2
    shift || true
    for f in "$@"; do
        if [ -f "$f" ]; then
            printf '[cluster] ---- last lines of %s ----\n' "$f" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

# The machine cannot host the cluster (not root, no apt, install failed): exit 3, so that the
# pytest fixture can skip (or fail under CI) with this reason.
cannot_host() {
    printf '[cluster] CANNOT HOST THE TEST CLUSTER: %s\n' "$1" >&2
    shift || true
    for f in "$@"; do
        if [ -f "$f" ]; then printf '[cluster] ---- last lines of %s ----\n' "$f" >&2; tail -n 30 "$f" >&2; fi
    done
    exit 3
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.5 s until COMMAND succeeds.
wait_for() {
    local timeout=$1 what=$2; shift 2
    local deadline=$(( $(date +%s) + timeout ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# pid_of PIDFILE NAME: print the pid if PIDFILE names a live process called NAME.
pid_of() {
    local file=$1 name=$2 pid
    [ -f "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$name" ] || return 1
    echo "$pid"
}

# stop_pid PID: TERM, wait up to 15 s, then KILL.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

need_root() {
    [ "$(id -u)" = 0 ] || cannot_host "must run as root (it installs packages, starts daemons, creates user $TEST_USER)"
}

# ---------------------------------------------------------------------------- install
install_packages() {
    local missing=() p
    command -v dpkg-query >/dev/null || cannot_host "not a Debian-like system (no dpkg-query)"
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all installed"
        return
    fi
    [ "${IRQ_CLUSTER_NO_INSTALL:-0}" != 1 ] || cannot_host "missing packages (IRQ_CLUSTER_NO_INSTALL=1): ${missing[*]}"
    command -v apt-get >/dev/null || cannot_host "apt-get not found; install by hand: ${missing[*]}"
    say "installing: ${missing[*]}"
    local t=$(date +%s) apt_log=$LOG/apt.log
    export DEBIAN_FRONTEND=noninteractive
    local opts=(-y -q -o DPkg::Lock::Timeout=300
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # No init system here: keep maintainer scripts from starting daemons.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created_policy=1
    fi
    if ! apt-get install "${opts[@]}" "${missing[@]}" >"$apt_log" 2>&1; then
        say "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >>"$apt_log" 2>&1 || true
        apt-get install "${opts[@]}" "${missing[@]}" >>"$apt_log" 2>&1 || {
            [ $created_policy = 1 ] && rm -f "$policy"
            cannot_host "apt-get install failed" "$apt_log"
        }
    fi
    [ $created_policy = 1 ] && rm -f "$policy"
    say "packages installed in $(( $(date +%s) - t ))s"
}

# ---------------------------------------------------------------------------- directories
make_dirs() {
    mkdir -p "$STATE_DIR" "$ETC" "$RUN" "$LOG" "$SPOOL/slurmd" "$SPOOL/slurmctld" "$SSH_DIR" \
             "$MODULEPATH_DIR/python" "$MODULEPATH_DIR/cuda" /etc/slurm
    # The test user reads slurm.conf and the module files below the state directory.
    chmod 755 "$STATE_DIR" "$ETC" "$MODULEPATH_DIR" "$MODULEPATH_DIR/python" "$MODULEPATH_DIR/cuda"
    chmod 755 "$SSH_DIR"
    # slurmstepd runs the job script from SlurmdSpoolDir as the job user: keep it traversable.
    chmod 755 "$SPOOL" "$SPOOL/slurmd"
    chmod 700 "$RUN" "$SPOOL/slurmctld"
}

# ---------------------------------------------------------------------------- munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then say "munge: running"; return; fi
    local pid
    if pid=$(pid_of /run/munge/munged.pid munged); then stop_pid "$pid"; fi
    rm -f /run/munge/munged.pid
    [ -s /etc/munge/munge.key ] || {
        say "munge: creating key"
        if command -v mungekey >/dev/null; then mungekey --create --force; else create-munge-key -f; fi
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key
    chmod 755 /run/munge; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
    say "munge: starting"
    runuser -u munge -- /usr/sbin/munged --force >>"$LOG/munged.start.log" 2>&1 \
        || die "munged did not start" "$LOG/munged.start.log" /var/log/munge/munged.log
    wait_for 15 munge munge_ok || die "munge -n | unmunge fails" /var/log/munge/munged.log
    pid_of /run/munge/munged.pid munged >"$RUN/munged.ours" || true
}

stop_munge() {
    local pid
    if [ -f "$RUN/munged.ours" ] && pid=$(pid_of "$RUN/munged.ours" munged); then
        say "munge: stopping ($pid)"; stop_pid "$pid"
    fi
    rm -f "$RUN/munged.ours"
}

# ---------------------------------------------------------------------------- MariaDB
mariadb_ok() { mysqladmin --protocol=socket ping >/dev/null 2>&1; }

start_mariadb() {
    if mariadb_ok; then
        say "mariadb: running"
    else
        mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
        if [ ! -d /var/lib/mysql/mysql ]; then
            say "mariadb: initialising data directory"
            mysql_install_db --user=mysql --datadir=/var/lib/mysql >"$LOG/mariadb-install.log" 2>&1 \
                || die "mysql_install_db failed" "$LOG/mariadb-install.log"
        fi
        say "mariadb: starting (127.0.0.1)"
        touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
        # Small buffers: 2 shared cores and a test database of a few rows.
        setsid nohup mysqld_safe --skip-syslog --log-error="$LOG/mariadb.log" \
            --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
            --innodb-buffer-pool-size=64M --performance-schema=OFF \
            </dev/null >>"$LOG/mariadb.log" 2>&1 &
        echo $! >"$RUN/mysqld_safe.ours"
        wait_for 60 mariadb mariadb_ok || die "MariaDB did not answer within 60s" "$LOG/mariadb.log"
    fi
    mysql --protocol=socket <<SQL || die "could not create the accounting database" "$LOG/mariadb.log"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

stop_mariadb() {
    if [ -f "$RUN/mysqld_safe.ours" ]; then
        if mariadb_ok; then
            say "mariadb: stopping"
            mysqladmin --protocol=socket shutdown >/dev/null 2>&1 || true
        fi
        local pid
        pid=$(tr -dc '0-9' <"$RUN/mysqld_safe.ours")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            wait_for 30 mysqld_safe bash -c "! kill -0 $pid" || stop_pid "$pid"
        fi
        rm -f "$RUN/mysqld_safe.ours"
    fi
}

# ---------------------------------------------------------------------------- SLURM config
node_cpus()   { nproc; }
node_memory() {  # MB for RealMemory: physical memory minus 1 GiB for the system, at least 1024
    local mb
    mb=$(awk '/^MemTotal:/ {print int($2/1024) - 1024}' /proc/meminfo)
    [ "$mb" -ge 1024 ] || mb=1024
    echo "$mb"
}

write_if_changed() {  # write_if_changed FILE MODE < content; returns 0 if the file changed
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"; return 1
    fi
    mv -f "$tmp" "$file"; return 0
}

# Memory enforcement: with a writable cgroup v1 memory hierarchy (this kind of VM has one),
# task/cgroup kills a job over its --mem and sacct shows OUT_OF_MEMORY, as on a real cluster.
# Otherwise the JobAcctGather poller kills it (OverMemoryKill) and sacct shows FAILED, 0:9.
cgroup_v1_usable() {
    local c probe
    for c in memory freezer; do
        [ "$(stat -f -c %T "/sys/fs/cgroup/$c" 2>/dev/null)" = cgroupfs ] || return 1
    done
    probe=/sys/fs/cgroup/memory/irq-test-cluster-probe.$$
    mkdir "$probe" 2>/dev/null || return 1
    rmdir "$probe" 2>/dev/null || true
}

memory_mode() {
    case "${IRQ_CLUSTER_CGROUP:-auto}" in
        yes|1|cgroup) echo cgroup ;;
        no|0|jobacct) echo jobacct ;;
        *) if cgroup_v1_usable; then echo cgroup; else echo jobacct; fi ;;
    esac
}

SLURM_CONF_CHANGED=0
MEMORY_MODE=
write_slurm_config() {
    local mem cpus mode proctrack task gather_params
    mem=$(node_memory); cpus=$(node_cpus)
    mode=$(memory_mode); MEMORY_MODE=$mode
    if [ "$mode" = cgroup ]; then
        proctrack=proctrack/cgroup; task=task/cgroup; gather_params=NoOverMemoryKill
    else
        proctrack=proctrack/linuxproc; task=task/none; gather_params=OverMemoryKill
    fi
    say "memory enforcement: $mode"
    if write_if_changed "$SLURM_CONF_FILE" 644 <<EOF
# Written by tests/cluster/cluster.sh -- irq's loopback test cluster. Do not edit; rerun \`up\`.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
# Memory enforcement mode: $mode (cgroup: see cgroup.conf).
ProctrackType=$proctrack
TaskPlugin=$task
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs without --mem get 1 GB per CPU, so two small jobs can run side by side.
DefMemPerCPU=1024
# Reject at submit time what can never fit a partition (time, memory, nodes).
EnforcePartLimits=ALL
# Without cgroups (mode jobacct), OverMemoryKill: the accounting poller (every second) kills
# a step whose processes use more RSS than the job asked for (--mem).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=$gather_params
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations,limits,qos
JobCompType=jobcomp/none
# Quick tests: forget finished jobs after 5 s (sacct keeps them), kill fast, no grace time.
MinJobAge=5
KillWait=2
OverTimeLimit=0
InactiveLimit=0
Waittime=0
ReturnToService=2
SlurmdTimeout=60
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2,batch_sched_delay=0
MailProg=/bin/true
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=gpu_test Nodes=$NODE Default=YES MaxTime=02:00:00 DefaultTime=00:30:00 State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=02:00:00 DefaultTime=00:30:00 State=UP
EOF
    then SLURM_CONF_CHANGED=1; fi
    # Two fake GPUs so that --gres=gpu:1 works as on a GPU cluster. slurmd drops GPUs without
    # a File and wants character devices: symlinks to /dev/null. Jobs see CUDA_VISIBLE_DEVICES.
    mkdir -p "$STATE_DIR/fake-gpu"
    ln -sfn /dev/null "$STATE_DIR/fake-gpu/gpu0"
    ln -sfn /dev/null "$STATE_DIR/fake-gpu/gpu1"
    if write_if_changed "$ETC/gres.conf" 644 <<EOF
# Written by tests/cluster/cluster.sh
NodeName=$NODE Name=gpu File=$STATE_DIR/fake-gpu/gpu[0-1]
EOF
    then SLURM_CONF_CHANGED=1; fi
    if write_if_changed "$ETC/cgroup.conf" 644 <<EOF
# Written by tests/cluster/cluster.sh (used when ProctrackType=proctrack/cgroup)
CgroupPlugin=cgroup/v1
CgroupAutomount=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainCores=no
ConstrainDevices=no
EOF
    then SLURM_CONF_CHANGED=1; fi
    write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF || true
# Written by tests/cluster/cluster.sh
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
EOF
    # Clients (the test user over ssh, batch jobs) read the default path, as on a real cluster.
    local f
    for f in slurm.conf gres.conf cgroup.conf; do
        if [ -f "/etc/slurm/$f" ] && ! cmp -s "$ETC/$f" "/etc/slurm/$f"; then
            grep -q 'tests/cluster/cluster.sh' "/etc/slurm/$f" 2>/dev/null \
                || [ -f "/etc/slurm/$f.before-irq-test-cluster" ] \
                || cp -p "/etc/slurm/$f" "/etc/slurm/$f.before-irq-test-cluster"
        fi
        install -m 644 "$ETC/$f" "/etc/slurm/$f"
    done
}

# ---------------------------------------------------------------------------- SLURM daemons
daemon_env() { env SLURM_CONF="$SLURM_CONF_FILE" "$@"; }

# stop_daemon NAME PIDFILE: stop ours; also stop a stray one left by an earlier run elsewhere.
stop_daemon() {
    local name=$1 pidfile=$2 pid
    if pid=$(pid_of "$pidfile" "$name"); then
        say "$name: stopping ($pid)"; stop_pid "$pid"
    fi
    rm -f "$pidfile"
}

kill_strays() {
    local name=$1 pid
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
        warn "$name ($pid) runs without our pid file (left over from an earlier run?); stopping it"
        stop_pid "$pid"
    done
}

dbd_ok() { sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1; }

start_slurmdbd() {
    if pid_of "$RUN/slurmdbd.pid" slurmdbd >/dev/null && dbd_ok; then say "slurmdbd: running"; return; fi
    stop_daemon slurmdbd "$RUN/slurmdbd.pid"
    kill_strays slurmdbd
    say "slurmdbd: starting"
    daemon_env /usr/sbin/slurmdbd >>"$LOG/slurmdbd.start.log" 2>&1 \
        || die "slurmdbd did not start" "$LOG/slurmdbd.start.log" "$LOG/slurmdbd.log"
    wait_for 60 slurmdbd dbd_ok || die "slurmdbd does not answer sacctmgr within 60s" "$LOG/slurmdbd.log"
}

ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    if [ "$SLURM_CONF_CHANGED" = 0 ] && pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null && ctld_ok; then
        say "slurmctld: running"; return
    fi
    stop_daemon slurmctld "$RUN/slurmctld.pid"
    kill_strays slurmctld
    say "slurmctld: starting"
    daemon_env /usr/sbin/slurmctld >>"$LOG/slurmctld.start.log" 2>&1 \
        || die "slurmctld did not start" "$LOG/slurmctld.start.log" "$LOG/slurmctld.log"
    wait_for 60 slurmctld ctld_ok || die "slurmctld does not answer scontrol ping within 60s" "$LOG/slurmctld.log"
}

start_slurmd() {
    if [ "$SLURM_CONF_CHANGED" = 0 ] && pid_of "$RUN/slurmd.pid" slurmd >/dev/null; then
        say "slurmd: running"; return
    fi
    stop_daemon slurmd "$RUN/slurmd.pid"
    kill_strays slurmd
    say "slurmd: starting"
    daemon_env /usr/sbin/slurmd >>"$LOG/slurmd.start.log" 2>&1 \
        || die "slurmd did not start" "$LOG/slurmd.start.log" "$LOG/slurmd.log"
}

node_state() { sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n1; }
node_idle()  { case "$(node_state)" in idle|mix|alloc) return 0;; *) return 1;; esac; }

wait_node_idle() {
    local deadline=$(( $(date +%s) + 60 )) st
    while :; do
        st=$(node_state)
        case "$st" in
            idle|mix|alloc) say "node $NODE: $st"; return 0;;
            inval*)
                die "node $NODE is INVAL: $(sinfo -h -R -o %E 2>/dev/null); fix slurm.conf/gres.conf, then restart-slurmctld" \
                    "$LOG/slurmd.log" "$LOG/slurmctld.log";;
            *drain*|down*|drng*|fail*)
                # e.g. after slurmd was killed; the config is ours, so resume it.
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || die "node $NODE is '$st', not idle, after 60s ($(sinfo -h -R 2>/dev/null))" \
            "$LOG/slurmd.log" "$LOG/slurmctld.log"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------- accounting
sacct_has() {  # sacct_has ENTITY NAME [extra filter...]
    local entity=$1 name=$2; shift 2
    sacctmgr -n -P list "$entity" "$@" format=name 2>/dev/null | grep -qx "$name"
}

setup_accounting() {
    sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER_NAME" || {
        say "accounting: adding cluster $CLUSTER_NAME"
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null || die "sacctmgr add cluster failed" "$LOG/slurmdbd.log"
    }
    sacct_has qos "$QOS_NAME" || {
        say "accounting: adding QOS $QOS_NAME (MaxSubmitJobsPerUser=2)"
        sacctmgr -i add qos "$QOS_NAME" MaxSubmitJobsPerUser=2 >/dev/null || die "sacctmgr add qos failed"
    }
    [ "$(sacctmgr -n -P list qos "$QOS_NAME" format=MaxSubmitPU)" = 2 ] \
        || sacctmgr -i modify qos "$QOS_NAME" set MaxSubmitJobsPerUser=2 >/dev/null
    sacctmgr -n -P list account "$ACCOUNT_NAME" format=account 2>/dev/null | grep -qx "$ACCOUNT_NAME" || {
        say "accounting: adding account $ACCOUNT_NAME"
        sacctmgr -i add account "$ACCOUNT_NAME" Cluster="$CLUSTER_NAME" Description=irq-tests Organization=irq \
            >/dev/null || die "sacctmgr add account failed"
    }
    sacctmgr -n -P list user "$TEST_USER" format=user 2>/dev/null | grep -qx "$TEST_USER" || {
        say "accounting: adding user $TEST_USER"
        sacctmgr -i add user "$TEST_USER" Account="$ACCOUNT_NAME" DefaultAccount="$ACCOUNT_NAME" \
            Cluster="$CLUSTER_NAME" >/dev/null || die "sacctmgr add user failed"
    }
    local assoc
    assoc=$(sacctmgr -n -P list assoc user="$TEST_USER" cluster="$CLUSTER_NAME" format=qos,defaultqos | head -n1)
    if [ "$assoc" != "normal,$QOS_NAME|$QOS_NAME" ]; then
        say "accounting: QOS normal,$QOS_NAME (default $QOS_NAME) for $TEST_USER"
        sacctmgr -i modify user "$TEST_USER" set QOS=normal,"$QOS_NAME" DefaultQOS="$QOS_NAME" >/dev/null \
            || die "sacctmgr modify user failed"
    fi
}

# ---------------------------------------------------------------------------- test user
setup_user() {
    local home
    if ! id "$TEST_USER" >/dev/null 2>&1; then
        say "user: creating $TEST_USER"
        useradd -m -s /bin/bash "$TEST_USER"
    fi
    # useradd leaves the account locked ('!'), and sshd refuses even a key for it.
    [ "$(getent shadow "$TEST_USER" | cut -d: -f2)" = '*' ] || usermod -p '*' "$TEST_USER"
    [ "$(getent passwd "$TEST_USER" | cut -d: -f7)" = /bin/bash ] || usermod -s /bin/bash "$TEST_USER"
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    USER_HOME=$home
    WORK_DIR=$home/irq-work
    SCRATCH_DIR=$home/scratch

    # Like a cluster's ~/.bashrc that sources /etc/bashrc: `module` in every bash the user gets,
    # including the non-interactive one sshd starts for `ssh host COMMAND`.
    local rc=$home/.bashrc marker='# >>> irq test cluster: Lmod >>>'
    [ -f "$rc" ] || cp /etc/skel/.bashrc "$rc" 2>/dev/null || touch "$rc"
    if ! grep -qF "$marker" "$rc"; then
        { printf '%s\n' "$marker" \
            'if ! type module >/dev/null 2>&1 && [ -r /etc/profile.d/lmod.sh ]; then' \
            '    . /etc/profile.d/lmod.sh' \
            'fi' \
            '# <<< irq test cluster: Lmod <<<'
          cat "$rc"; } >"$rc.new"
        mv -f "$rc.new" "$rc"
    fi
    [ -f "$home/.profile" ] || cp /etc/skel/.profile "$home/.profile" 2>/dev/null || true

    # Client key pair (used by root-run tests) and authorized_keys of the test user.
    [ -f "$CLIENT_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "irq-test-cluster-client" -f "$CLIENT_KEY"
    chmod 600 "$CLIENT_KEY"
    mkdir -p "$home/.ssh" "$WORK_DIR" "$SCRATCH_DIR"
    local pub; pub=$(cat "$CLIENT_KEY.pub")
    grep -qxF "$pub" "$home/.ssh/authorized_keys" 2>/dev/null || echo "$pub" >>"$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
    chown -R "$TEST_USER:" "$home/.ssh" "$rc" "$WORK_DIR" "$SCRATCH_DIR"
    [ -f "$home/.profile" ] && chown "$TEST_USER:" "$home/.profile"
    chmod 755 "$home"

    # Bare repositories: created by root, readable by the test user.
    mkdir -p "$REPOS_DIR"; chmod 755 "$REPOS_DIR" "$(dirname "$REPOS_DIR")"
    git config --system --get-all safe.directory 2>/dev/null | grep -qx '\*' \
        || git config --system --add safe.directory '*'
}

# ---------------------------------------------------------------------------- Lmod + job Python
setup_modules() {
    write_if_changed "$MODULEPATH_DIR/python/3.10.13-fasrc01.lua" 644 <<EOF || true
-- irq loopback test cluster: stands in for a cluster's python/3.10.13-fasrc01 module.
-- The interpreter is really Debian's python3 in a venv with torch (CPU) and numpy.
whatis("Name: python")
whatis("Version: 3.10.13-fasrc01")
help([[Python for jobs on irq's loopback test cluster ($VENV)]])
prepend_path("PATH", "$VENV/bin")
EOF
    write_if_changed "$MODULEPATH_DIR/cuda/11.8.0-fasrc01.lua" 644 <<EOF || true
-- irq loopback test cluster: a harmless stand-in for a CUDA module (there is no GPU here).
whatis("Name: cuda")
whatis("Version: 11.8.0-fasrc01")
setenv("CUDA_MODULE_LOADED", "11.8.0-fasrc01")
EOF
    # /etc/profile.d/lmod.sh builds MODULEPATH from this file, in every shell that sources it.
    local mp=/etc/lmod/modulespath
    mkdir -p /etc/lmod; touch "$mp"
    grep -qxF "$MODULEPATH_DIR" "$mp" || echo "$MODULEPATH_DIR" >>"$mp"
}

venv_ok() { "$VENV/bin/python" -c 'import torch, numpy' >/dev/null 2>&1; }

setup_venv() {
    if venv_ok; then say "job python: $VENV ok"; return; fi
    local t=$(date +%s) pip_opts=(-q)
    say "job python: creating $VENV (torch CPU + numpy)"
    rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV" >"$LOG/venv.log" 2>&1 || die "python3 -m venv failed" "$LOG/venv.log"
    # A bounded torch: the CPU wheel (a local wheel directory if the machine has one).
    [ -d /opt/wheels ] && pip_opts+=(--find-links /opt/wheels)
    "$VENV/bin/pip" install "${pip_opts[@]}" 'torch>=2.3,<2.14' numpy >>"$LOG/venv.log" 2>&1 \
        || die "pip install torch numpy failed" "$LOG/venv.log"
    venv_ok || die "torch does not import in $VENV" "$LOG/venv.log"
    chmod -R a+rX "$VENV"
    say "job python ready in $(( $(date +%s) - t ))s"
}

# ---------------------------------------------------------------------------- sshd
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null; }

ssh_user() {  # ssh_user COMMAND: one command as the test user, through our sshd
    ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -o ConnectTimeout=5 -i "$CLIENT_KEY" -p "$SSH_PORT" "$TEST_USER@127.0.0.1" "$@"
}

write_sshd_config() {
    [ -f "$HOST_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "irq-test-cluster-host" -f "$HOST_KEY"
    chmod 600 "$HOST_KEY"
    write_if_changed "$SSHD_CONFIG" 644 <<EOF || true
# Written by tests/cluster/cluster.sh
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $RUN/sshd.pid
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
EOF
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
    chmod 644 "$KNOWN_HOSTS"
    # For `ssh -F FILE irq-test-cluster` / GIT_SSH_COMMAND="ssh -F FILE".
    cat >"$SSH_CLIENT_CONFIG" <<EOF
Host irq-test-cluster
    HostName 127.0.0.1
    Port $SSH_PORT
    User $TEST_USER
    IdentityFile $CLIENT_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $KNOWN_HOSTS
    StrictHostKeyChecking yes
    BatchMode yes
EOF
    chmod 644 "$SSH_CLIENT_CONFIG"
}

start_sshd() {
    write_sshd_config
    if pid_of "$RUN/sshd.pid" sshd >/dev/null && port_open; then say "sshd: running on 127.0.0.1:$SSH_PORT"; return; fi
    stop_daemon sshd "$RUN/sshd.pid"
    local pid
    for pid in $(pgrep -f "^/usr/sbin/sshd -f $SSHD_CONFIG" 2>/dev/null || true); do
        warn "sshd ($pid) for $SSHD_CONFIG runs without our pid file; stopping it"
        stop_pid "$pid"
    done
    port_open && die "port 127.0.0.1:$SSH_PORT is taken by another process (set IRQ_CLUSTER_SSH_PORT)"
    mkdir -p /run/sshd; chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$SSHD_CONFIG" >"$LOG/sshd.start.log" 2>&1 || die "sshd -t rejects $SSHD_CONFIG" "$LOG/sshd.start.log"
    say "sshd: starting on 127.0.0.1:$SSH_PORT"
    /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$LOG/sshd.log" >>"$LOG/sshd.start.log" 2>&1 \
        || die "sshd did not start" "$LOG/sshd.start.log" "$LOG/sshd.log"
    wait_for 15 sshd port_open || die "sshd does not listen on 127.0.0.1:$SSH_PORT" "$LOG/sshd.log"
}

stop_sshd() { stop_daemon sshd "$RUN/sshd.pid"; }

# ---------------------------------------------------------------------------- second-factor sshd
# A second sshd (127.0.0.1:MFA_PORT, same host key, user and authorized key) that asks for a
# one-time code after the public key: keyboard-interactive through PAM pam_exec. The code is
# whatever MFA_DIR/code holds (tests write it); every check appends a line to MFA_DIR/runs
# ("ok USER" or "bad USER"): one line per login that reached the second factor.
mfa_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$MFA_PORT") 2>/dev/null; }

write_mfa_config() {
    mkdir -p "$MFA_DIR"; chmod 700 "$MFA_DIR"
    [ -f "$MFA_DIR/code" ] || echo 424242 >"$MFA_DIR/code"
    touch "$MFA_DIR/runs"
    write_if_changed "$MFA_DIR/check-code" 755 <<EOF || true
#!/bin/sh
# pam_exec expose_authtok: the typed code arrives on stdin (NUL-terminated).
read -r typed || true
typed=\$(printf '%s' "\$typed" | tr -d '\\000\\r\\n ')
want=\$(tr -d '\\r\\n ' <"$MFA_DIR/code")
if [ -n "\$typed" ] && [ "\$typed" = "\$want" ]; then
    echo "ok \$PAM_USER" >>"$MFA_DIR/runs"; exit 0
fi
echo "bad \$PAM_USER" >>"$MFA_DIR/runs"; exit 1
EOF
    # sshd (9.2) always uses the PAM service "sshd"; the main sshd runs UsePAM no, so only this
    # one reads the file. The machine's own file is saved once and restored by stop-sshd-mfa.
    if [ -f "$PAM_SSHD" ] && ! grep -q irq-test-cluster "$PAM_SSHD" && [ ! -f "$PAM_SSHD.before-irq-test-cluster" ]; then
        cp -p "$PAM_SSHD" "$PAM_SSHD.before-irq-test-cluster"
    fi
    write_if_changed "$PAM_SSHD" 644 <<EOF || true
# Written by irq-test-cluster (tests/cluster/cluster.sh start-sshd-mfa): a one-time code.
auth     requisite  pam_exec.so expose_authtok quiet $MFA_DIR/check-code
auth     optional   pam_permit.so
account  required   pam_permit.so
session  optional   pam_permit.so
password required   pam_deny.so
EOF
    write_if_changed "$MFA_SSHD_CONFIG" 644 <<EOF || true
# Written by tests/cluster/cluster.sh: public key, then a one-time code (keyboard-interactive)
Port $MFA_PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $RUN/sshd-mfa.pid
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication yes
AuthenticationMethods publickey,keyboard-interactive
UsePAM yes
PermitRootLogin no
StrictModes no
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
EOF
    # the same host key on another port: known_hosts needs its own line
    grep -q "^\[127.0.0.1\]:$MFA_PORT " "$KNOWN_HOSTS" 2>/dev/null \
        || echo "[127.0.0.1]:$MFA_PORT $(cut -d' ' -f1,2 "$HOST_KEY.pub")" >>"$KNOWN_HOSTS"
}

start_sshd_mfa() {
    [ -f "$HOST_KEY" ] || die "run up first"
    write_mfa_config
    if pid_of "$RUN/sshd-mfa.pid" sshd >/dev/null && mfa_port_open; then say "sshd (second factor): running on 127.0.0.1:$MFA_PORT"; return; fi
    stop_daemon sshd "$RUN/sshd-mfa.pid"
    mfa_port_open && die "port 127.0.0.1:$MFA_PORT is taken by another process (set IRQ_CLUSTER_MFA_PORT)"
    mkdir -p /run/sshd; chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$MFA_SSHD_CONFIG" >"$LOG/sshd-mfa.start.log" 2>&1 || die "sshd -t rejects $MFA_SSHD_CONFIG" "$LOG/sshd-mfa.start.log"
    say "sshd (second factor): starting on 127.0.0.1:$MFA_PORT"
    /usr/sbin/sshd -f "$MFA_SSHD_CONFIG" -E "$LOG/sshd-mfa.log" >>"$LOG/sshd-mfa.start.log" 2>&1 \
        || die "sshd (second factor) did not start" "$LOG/sshd-mfa.start.log" "$LOG/sshd-mfa.log"
    wait_for 15 sshd-mfa mfa_port_open || die "sshd does not listen on 127.0.0.1:$MFA_PORT" "$LOG/sshd-mfa.log"
}

stop_sshd_mfa() {
    stop_daemon sshd "$RUN/sshd-mfa.pid"
    if [ -f "$PAM_SSHD.before-irq-test-cluster" ]; then
        mv -f "$PAM_SSHD.before-irq-test-cluster" "$PAM_SSHD"
    fi
}

# ---------------------------------------------------------------------------- env output
user_paths() {
    USER_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
    WORK_DIR=$USER_HOME/irq-work
    SCRATCH_DIR=$USER_HOME/scratch
}

write_env() {
    user_paths
    cat >"$ENV_FILE" <<EOF
IRQ_CLUSTER_HOST=127.0.0.1
IRQ_CLUSTER_PORT=$SSH_PORT
IRQ_CLUSTER_USER=$TEST_USER
IRQ_CLUSTER_KEY=$CLIENT_KEY
IRQ_CLUSTER_KNOWN_HOSTS=$KNOWN_HOSTS
IRQ_CLUSTER_SSH_CONFIG=$SSH_CLIENT_CONFIG
IRQ_CLUSTER_MODULEPATH=$MODULEPATH_DIR
IRQ_CLUSTER_REPOS=$REPOS_DIR
IRQ_CLUSTER_WORKDIR=$WORK_DIR
IRQ_CLUSTER_SCRATCH=$SCRATCH_DIR
IRQ_CLUSTER_PYTHON_MODULE=$PYTHON_MODULE
IRQ_CLUSTER_CUDA_MODULE=$CUDA_MODULE
IRQ_CLUSTER_NAME=$CLUSTER_NAME
IRQ_CLUSTER_DIR=$STATE_DIR
IRQ_CLUSTER_QOS=$QOS_NAME
IRQ_CLUSTER_ACCOUNT=$ACCOUNT_NAME
IRQ_CLUSTER_PARTITIONS=gpu_test,gpu
IRQ_CLUSTER_SLURM_CONF=/etc/slurm/slurm.conf
IRQ_CLUSTER_MEMORY_ENFORCEMENT=$MEMORY_MODE
IRQ_CLUSTER_OOM_STATE=$([ "$MEMORY_MODE" = cgroup ] && echo OUT_OF_MEMORY || echo FAILED)
EOF
    chmod 644 "$ENV_FILE"
}

# ---------------------------------------------------------------------------- verification
verify() {
    munge_ok || die "munge is not working" /var/log/munge/munged.log
    wait_node_idle
    # The user's own view, over ssh, with Lmod: proves sshd, keys, known_hosts, slurm.conf, modules.
    local out
    out=$(ssh_user "sinfo -h -o %P; module is-avail $PYTHON_MODULE && echo module-ok" 2>&1) \
        || die "ssh $TEST_USER@127.0.0.1:$SSH_PORT failed: $out" "$LOG/sshd.log"
    grep -q 'gpu_test\*' <<<"$out" || die "sinfo over ssh does not show gpu_test: $out" "$LOG/slurmctld.log"
    grep -q 'module-ok' <<<"$out" || die "module $PYTHON_MODULE not available over ssh: $out"
    say "ssh $TEST_USER@127.0.0.1:$SSH_PORT: sinfo and module ok"
}

# ---------------------------------------------------------------------------- commands
cmd_up() {
    need_root
    make_dirs
    say "state directory $STATE_DIR, node $NODE"
    install_packages
    start_munge
    start_mariadb
    write_slurm_config
    start_slurmdbd
    setup_user
    setup_accounting
    setup_modules
    start_slurmctld
    start_slurmd
    start_sshd
    setup_venv
    verify
    write_env
    # Brought up by hand: the pytest fixture must not stop it at the end of a session.
    [ "${IRQ_CLUSTER_FROM_FIXTURE:-}" = 1 ] || rm -f "$STATE_DIR/sessions/.fixture-started"
    say "cluster up in $(( $(date +%s) - T0 ))s"
    cat "$ENV_FILE"
}

cmd_down() {
    need_root
    stop_sshd_mfa
    stop_sshd
    # Running jobs would be orphaned otherwise (proctrack/linuxproc): cancel them first.
    if pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null && ctld_ok; then
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
            say "cancelling remaining jobs"
            scancel --full --user="$TEST_USER" >/dev/null 2>&1 || true
            wait_for 15 squeue bash -c '[ -z "$(squeue -h -t R,CG -o %i)" ]' || true
        fi
    fi
    # slurmd and slurmctld side by side, then slurmdbd (it takes their last records), then the rest.
    stop_daemon slurmd "$RUN/slurmd.pid" &
    stop_daemon slurmctld "$RUN/slurmctld.pid" &
    wait
    stop_daemon slurmdbd "$RUN/slurmdbd.pid"
    stop_mariadb &
    stop_munge &
    wait
    rm -f "$ENV_FILE" "$STATE_DIR/sessions/.fixture-started"
    say "cluster down (packages, user, config and accounting data stay)"
}

show() { if "$@" >/dev/null 2>&1; then echo running; else echo stopped; fi; }

cmd_status() {
    echo "munge:     $(show munge_ok)"
    echo "mariadb:   $(show mariadb_ok)"
    echo "slurmdbd:  $(show pid_of "$RUN/slurmdbd.pid" slurmdbd)"
    echo "slurmctld: $(show pid_of "$RUN/slurmctld.pid" slurmctld)"
    echo "slurmd:    $(show pid_of "$RUN/slurmd.pid" slurmd)"
    echo "sshd:      $(show pid_of "$RUN/sshd.pid" sshd) (127.0.0.1:$SSH_PORT)"
    if ctld_ok; then sinfo 2>&1 || true; squeue 2>&1 || true; fi
    if [ -f "$ENV_FILE" ]; then cat "$ENV_FILE"; else echo "(no $ENV_FILE: run up)"; return 1; fi
    # Exit 0 only if everything is up.
    munge_ok && mariadb_ok && ctld_ok && pid_of "$RUN/slurmd.pid" slurmd >/dev/null \
        && pid_of "$RUN/slurmdbd.pid" slurmdbd >/dev/null && pid_of "$RUN/sshd.pid" sshd >/dev/null \
        && node_idle
}

cmd_restart_slurmctld() {
    need_root
    stop_daemon slurmctld "$RUN/slurmctld.pid"
    SLURM_CONF_CHANGED=1 start_slurmctld
    wait_node_idle
}

cmd_start_slurmctld() {
    need_root
    SLURM_CONF_CHANGED=1 start_slurmctld
    wait_node_idle
}

cmd_restart_slurmdbd() {
    need_root
    stop_daemon slurmdbd "$RUN/slurmdbd.pid"
    start_slurmdbd
}

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# One cluster command at a time (several test sessions may share this machine): rerun this
# script under flock(1). `-o` keeps the lock's file descriptor out of this script, so the daemons
# it starts do not inherit (and hold) the lock.
case "${1:-}" in
    up|down|stop-sshd|start-sshd|start-sshd-mfa|stop-sshd-mfa|restart-slurmctld|stop-slurmctld|start-slurmctld|restart-slurmdbd)
        if [ "$(id -u)" = 0 ] && [ -z "${IRQ_CLUSTER_LOCKED:-}" ] && command -v flock >/dev/null; then
            export IRQ_CLUSTER_LOCKED=1
            rc=0
            flock -o -E 75 -w 900 "${STATE_DIR%/}.lock" bash "$0" "$@" || rc=$?
            [ "$rc" != 75 ] || die "another cluster.sh held ${STATE_DIR%/}.lock for 15 minutes"
            exit "$rc"
        fi ;;
esac

# A pytest session holds STATE_DIR.session.lock while it uses the cluster (tests/cluster/fixture.py).
# Stopping things under it by hand breaks its tests: refuse unless --force or called by the fixture.
guard_session() {
    local lockfile="${STATE_DIR%/}.session.lock"
    [ "${IRQ_CLUSTER_FROM_FIXTURE:-}" = 1 ] && return 0
    [ "${2:-}" = --force ] && return 0
    [ -e "$lockfile" ] || return 0
    if ! flock -n "$lockfile" true 2>/dev/null; then
        die "a test session (pid $(head -c 20 "$lockfile" | tr -dc 0-9)) is using the cluster; wait for it, or: $0 $1 --force"
    fi
}
case "${1:-}" in
    down|stop-sshd|stop-slurmctld|restart-slurmctld|restart-slurmdbd) guard_session "$@" ;;
esac

case "${1:-}" in
    up)                cmd_up ;;
    down)              cmd_down ;;
    status)            cmd_status ;;
    env)               cat "$ENV_FILE" ;;
    stop-sshd)         need_root; stop_sshd; say "sshd stopped" ;;
    start-sshd)        need_root; start_sshd ;;
    start-sshd-mfa)    need_root; start_sshd_mfa; echo "IRQ_CLUSTER_MFA_PORT=$MFA_PORT"; echo "IRQ_CLUSTER_MFA_DIR=$MFA_DIR" ;;
    stop-sshd-mfa)     need_root; stop_sshd_mfa; say "sshd (second factor) stopped" ;;
    restart-slurmctld) cmd_restart_slurmctld ;;
    stop-slurmctld)    need_root; stop_daemon slurmctld "$RUN/slurmctld.pid"; say "slurmctld stopped" ;;
    start-slurmctld)   cmd_start_slurmctld ;;
    restart-slurmdbd)  cmd_restart_slurmdbd ;;
    *)                 usage ;;
esac
