#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, without systemd, for trying the Slurm executor
# and for CI: munged, slurmctld and slurmd on 127.0.0.1, state under /var/lib/gan-slurm.
# Needs root and Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge).
# usage: local-cluster.sh start | stop | status
set -euo pipefail
STATE=/var/lib/gan-slurm
CONF=/etc/slurm/slurm.conf

need() { command -v "$1" >/dev/null || { echo "error: $1 not found: apt-get install -y slurm-wlm munge" >&2; exit 2; }; }

start() {
  need munged; need slurmctld; need slurmd; need sinfo
  [ "$(id -u)" = 0 ] || { echo "error: run as root (it writes /etc/slurm and /etc/munge)" >&2; exit 2; }
  local host; host=$(hostname -s)
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge "$STATE/spool" "$STATE/state" /etc/slurm
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 400 /etc/munge/munge.key
  chmod 755 /run/munge
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
  for _ in $(seq 1 20); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.5; done
  [ -S /run/munge/munge.socket.2 ] || { echo "error: munged did not start (see /var/log/munge)" >&2; exit 1; }
  # the node's size as slurmd sees it
  local node; node=$(slurmd -C | head -n 1 | sed -E "s/^NodeName=[^ ]+/NodeName=$host/")
  cat >"$CONF" <<CONF
ClusterName=gan-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
MpiDefault=none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 30); do
    if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "error: the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
  timeout 5 sinfo -R >&2 || true
  exit 1
}

stop() {
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
  # wait until they are gone, so a start right after does not find them dying
  for _ in $(seq 1 30); do
    pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || return 0
    sleep 0.5
  done
  echo "error: the Slurm daemons did not stop" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) timeout 5 sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
