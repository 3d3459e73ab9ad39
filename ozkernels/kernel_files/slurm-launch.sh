#!/bin/bash -p
# ozkernels Slurm wrapper: run an ozkernels kernel as a Slurm job and leave no job behind.
#
# ozkernels copies this file into a Slurm kernel's dir as "ozkernels-slurm"; kernel.json runs:
#   ozkernels-slurm --connection-file FILE [--kernel NAME] [--pending-limit SECONDS]
#                   [--remote auto|always|never] [--address ADDR|IFACE] [--relay-python PY]
#                   [--srun PATH] [--srun-arg ARG]... [--profile NAME] -- LAUNCHER ARG...
# where LAUNCHER ARG... is the kernel's ozkernels-launch command line (modules, activation).
#
# Three roles, one file (bash >= 4.4, util-linux setsid and flock, Slurm's client commands):
# - the wrapper (jupyter_client's process) starts a supervisor in a session of its own and waits.
#   jupyter_client SIGKILLs the wrapper's process group on a forced shutdown or restart; SIGKILL
#   to srun would leave the job running until InactiveLimit, so srun must not be in that group.
#   SIGTERM/SIGHUP cancel the job, SIGINT interrupts the kernel (scancel --signal=INT).
# - the supervisor (--supervise) runs srun, reads the wrapper's requests on a pipe and cancels
#   the job when the pipe ends without a request (the wrapper died), says on stderr when the job
#   waits in the queue, gives up with the pending reason after --pending-limit, and for a remote
#   node relays the connection file's ports on this host to the kernel on the node.
# - the node side (--node, run by srun in the job) prints one machine-readable line
#   "ozkernels-slurm: job=ID node=NAME queue_wait=SECONDS address=ADDR", on a remote node makes
#   the kernel listen on the node's address (a copy of the connection file, FILE.slurm-node, with
#   ports 0: ipykernel writes back the ports it bound), then execs LAUNCHER.
#
# Problems print "ozkernels: kernel 'NAME': ..." on stderr (Jupyter's server log).

_ozs_self=${BASH_SOURCE[0]}
# Not $HOSTNAME: bash keeps an inherited one, and srun passes the login host's on to the node.
_ozs_host=$(</proc/sys/kernel/hostname) 2>/dev/null || _ozs_host=$(uname -n)
[[ $_ozs_self == /* ]] || _ozs_self=$PWD/$_ozs_self
_ozs_kernel=${_ozs_self%/*}
_ozs_kernel=${_ozs_kernel##*/}
# After giving up in the queue, restarts within this many seconds fail at once.
_ozs_retry_after=30
_ozs_usage="usage: ozkernels-slurm --connection-file FILE [--kernel NAME] [--pending-limit S]"
_ozs_usage+=" [--remote auto|always|never] [--address ADDR] [--relay-python PY] [--srun PATH]"
_ozs_usage+=" [--srun-arg ARG]... [--profile NAME] -- LAUNCHER ARG...; re-create the kernel with 'ozkernels sync'"

_ozs_say() {
    local msg=${1//$'\n'/ }
    printf "ozkernels: kernel '%s': %s\n" "${_ozs_kernel//$'\n'/ }" "$msg" >&2
}

_ozs_die() {
    _ozs_say "$1"
    exit "${2:-1}"
}

# Seconds.microseconds now; EPOCHREALTIME needs bash 5.
_ozs_now() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        printf '%s' "$EPOCHREALTIME"
    else
        date +%s.%N
    fi
}

_ozs_usec() {
    local f=${1#*.}000000
    printf '%s' $((${1%.*} * 1000000 + 10#${f:0:6}))
}

# Sleep without forking (a pipe nobody writes to); an interrupting trap ends it early.
_ozs_sleep() {
    read -r -t "$1" -u "$_ozs_never" _ozs_junk
}

# The relay (run with --relay-python on the login host): listens on the connection file's ip and
# ports and forwards each connection to the kernel's ports on the node, read from the copy the
# node side wrote and ipykernel completed.
# shellcheck disable=SC2016
_ozs_relay_py='
import asyncio, json, sys
cf, side, kernel = sys.argv[1:4]
PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
def handler(host, port):
    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
    return handle
async def main():
    mine = load(cf)
    if not isinstance(mine, dict) or not all(isinstance(mine.get(p), int) for p in PORTS):
        sys.exit("ozkernels: kernel %r: cannot read the connection file %s" % (kernel, cf))
    while True:
        node = load(side)
        if isinstance(node, dict) and all(node.get(p) for p in PORTS):
            break
        await asyncio.sleep(0.1)
    servers = []
    for p in PORTS:
        for attempt in range(50):
            try:
                servers.append(await asyncio.start_server(
                    handler(node["ip"], node[p]), mine["ip"], mine[p]))
                break
            except OSError as e:
                if attempt == 49:
                    sys.exit("ozkernels: kernel %r: cannot listen on %s:%s for the kernel on "
                             "%s: %s" % (kernel, mine["ip"], mine[p], node["ip"], e))
                await asyncio.sleep(0.1)
    await asyncio.Event().wait()
asyncio.run(main())
'

# ---------------------------------------------------------------- node side
# The address on this node that the login host can reach: $1 is an address, an interface name,
# or empty (the first non-loopback address of the node's name, else of `hostname -I`).
_ozs_node_address() {
    local want=$1 line addr
    if [[ $want =~ ^[0-9.]+$ ]]; then
        printf '%s' "$want"
        return 0
    fi
    if [[ -n $want ]]; then
        line=$(ip -o -4 addr show dev "$want" 2>/dev/null) || return 1
        [[ $line =~ inet\ ([0-9.]+) ]] || return 1
        printf '%s' "${BASH_REMATCH[1]}"
        return 0
    fi
    for addr in $(getent ahostsv4 "$_ozs_host" 2>/dev/null | while read -r a _; do printf '%s\n' "$a"; done) $(hostname -I 2>/dev/null); do
        if [[ $addr =~ ^[0-9.]+$ && $addr != 127.* ]]; then
            printf '%s' "$addr"
            return 0
        fi
    done
    return 1
}

_ozs_node() {
    local cf="" submitted="" login_host="" remote=never address="" sidecar="" wait_us addr=""
    local json key arg
    while (($#)); do
        case $1 in
            --) shift; break ;;
            --kernel | --connection-file | --submitted | --login-host | --remote | --address | --sidecar)
                (($# >= 2)) || _ozs_die "option $1 needs a value" 2
                case $1 in
                    --kernel) _ozs_kernel=$2 ;;
                    --connection-file) cf=$2 ;;
                    --submitted) submitted=$2 ;;
                    --login-host) login_host=$2 ;;
                    --remote) remote=$2 ;;
                    --address) address=$2 ;;
                    --sidecar) sidecar=$2 ;;
                esac
                shift 2
                ;;
            *) _ozs_die "unknown node option '$1'" 2 ;;
        esac
    done
    wait_us=0
    if [[ $submitted == *.* ]]; then
        wait_us=$(($(_ozs_usec "$(_ozs_now)") - $(_ozs_usec "$submitted")))
        ((wait_us >= 0)) || wait_us=0
    fi
    if [[ $remote == auto ]]; then
        if [[ ${_ozs_host%%.*} == "${login_host%%.*}" ]]; then remote=never; else remote=always; fi
    fi
    if [[ $remote == always ]]; then
        addr=$(_ozs_node_address "$address") ||
            _ozs_die "cannot find an address of node ${_ozs_host} for the kernel to listen on; set SlurmProfiles.node_address to an interface or address the login host can reach"
        json=$(<"$cf") ||
            _ozs_die "cannot read the connection file $cf on node ${_ozs_host}: the Jupyter runtime dir (JUPYTER_RUNTIME_DIR) must be on a filesystem the compute nodes share"
        [[ $json =~ \"transport\"[[:space:]]*:[[:space:]]*\"tcp\" ]] ||
            _ozs_die "the connection file $cf does not use the tcp transport, which a kernel on another node needs"
        [[ $json =~ (\"ip\"[[:space:]]*:[[:space:]]*)\"[^\"]*\" ]] ||
            _ozs_die "the connection file $cf has no ip"
        json=${json/"${BASH_REMATCH[0]}"/"${BASH_REMATCH[1]}\"$addr\""}
        for key in shell_port iopub_port stdin_port control_port hb_port; do
            [[ $json =~ (\"$key\"[[:space:]]*:[[:space:]]*)[0-9]+ ]] ||
                _ozs_die "the connection file $cf has no $key"
            json=${json/"${BASH_REMATCH[0]}"/"${BASH_REMATCH[1]}0"}
        done
        (umask 077 && printf '%s\n' "$json" >"$sidecar") ||
            _ozs_die "cannot write $sidecar on node ${_ozs_host}: the Jupyter runtime dir must be on a filesystem the compute nodes share"
        # The kernel reads (and completes) the copy; the login host keeps the original.
        local args=()
        for arg in "$@"; do
            if [[ $arg == "$cf" ]]; then args+=("$sidecar"); else args+=("$arg"); fi
        done
        set -- "${args[@]}"
    elif [[ -n $sidecar ]]; then
        printf 'local\n' >"$sidecar" 2>/dev/null
    fi
    printf 'ozkernels-slurm: job=%s node=%s queue_wait=%d.%03d address=%s\n' \
        "${SLURM_JOB_ID:-}" "${SLURMD_NODENAME:-$_ozs_host}" $((wait_us / 1000000)) \
        $((wait_us % 1000000 / 1000)) "${addr:-local}" >&2
    (($#)) || _ozs_die "no launcher command after --" 2
    exec "$@"
}

# ---------------------------------------------------------------- supervisor
# Cancel the job (by its unique name) until srun has gone: srun may not have submitted it yet.
_ozs_cancel_until_gone() {
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$_ozs_srun_pid" 2>/dev/null || return 0
        "$_ozs_scancel" --quiet --name="$_ozs_job_name" --user="$_ozs_user" </dev/null >/dev/null 2>&1
        _ozs_sleep 0.2
    done
    kill -KILL "$_ozs_srun_pid" 2>/dev/null
}

# The wrapper's requests ("interrupt", "cancel"); the end of input means the wrapper is gone.
_ozs_watch_wrapper() {
    local req
    while IFS= read -r req; do
        case $req in
            interrupt)
                "$_ozs_scancel" --quiet --signal=INT --name="$_ozs_job_name" \
                    --user="$_ozs_user" </dev/null >/dev/null 2>&1
                ;;
            cancel) break ;;
        esac
    done
    _ozs_cancel_until_gone
}

# Whether a pending reason is one that waiting never resolves (the request itself cannot be
# met where it was sent); sets _ozs_fix to the profile setting to change.
_ozs_never_starts() {
    case $1 in
        PartitionTimeLimit) _ozs_fix="'time' (above the partition's time limit)" ;;
        PartitionNodeLimit) _ozs_fix="'cpus', 'mem' or the node count in 'extra' (above the partition's limits)" ;;
        PartitionConfig) _ozs_fix="'partition', 'account' or 'qos' (the partition does not take them)" ;;
        "ReqNodeNotAvail, UnavailableNodes:"?*) _ozs_fix="'partition' or the node list in 'extra' (the nodes asked for are down or drained)" ;;
        BadConstraints) _ozs_fix="'extra' (--constraint) or 'gres' (no node has them)" ;;
        InvalidAccount | AccountNotAllowed) _ozs_fix="'account'" ;;
        InvalidQOS | QOSNotAllowed) _ozs_fix="'qos'" ;;
        Assoc*PerJob*Limit | QOS*PerJob*Limit | QOSMinCpuNotSatisfied)
            _ozs_fix="'cpus', 'mem', 'gpus' or 'time' (beyond the account's or QOS's per-job limit)" ;;
        *) return 1 ;;
    esac
}

# Say so while the job waits in the queue; cancel it with the pending reason past the limit,
# or at once when the reason says it can never start.
_ozs_watch_queue() {
    local t=0 next line id state reason steps=(1 3 10 30 60) _ozs_fix
    while :; do
        if ((${#steps[@]})); then
            next=${steps[0]}
            steps=("${steps[@]:1}")
        else
            next=$((t + 60))
        fi
        if ((_ozs_pending_limit > 0 && t < _ozs_pending_limit && next > _ozs_pending_limit)); then
            next=$_ozs_pending_limit
        fi
        ((next > t)) || continue
        _ozs_sleep "$((next - t))"
        t=$next
        line=$("$_ozs_squeue" --noheader --name="$_ozs_job_name" --user="$_ozs_user" \
            --format='%i|%T|%r' 2>/dev/null </dev/null)
        line=${line%%$'\n'*}
        IFS='|' read -r id state reason <<<"$line"
        if [[ -n $state && $state != PENDING ]]; then
            return 0
        fi
        if [[ $state == PENDING ]] && _ozs_never_starts "$reason"; then
            # shellcheck disable=SC2016 # the quotes are text around the name
            line="Slurm job $id can never start ($reason): change $_ozs_fix of Slurm profile${_ozs_profile:+ '$_ozs_profile'} (SlurmProfiles.profiles)"
            _ozs_say "$line"
            [[ -z $_ozs_cf ]] || printf '%(%s)T %s\n' -1 "$line" >"$_ozs_cf.slurm-gave-up"
            _ozs_cancel_until_gone
            return 0
        fi
        if [[ $state == PENDING ]]; then
            if ((_ozs_pending_limit > 0 && t >= _ozs_pending_limit)); then
                line="gave up after ${t} s: Slurm job $id is still pending ($reason); ask for fewer resources, another partition or time, or raise the profile's pending_limit"
                _ozs_say "$line"
                # Jupyter restarts a kernel that died up to 5 times: make those fail fast.
                [[ -z $_ozs_cf ]] || printf '%(%s)T %s\n' -1 "$line" >"$_ozs_cf.slurm-gave-up"
                _ozs_cancel_until_gone
                return 0
            fi
            _ozs_say "Slurm job $id is waiting in the queue ($reason) for ${t} s${_ozs_limit_note}"
        fi
    done
}

# Start the relay once the node side has said where the kernel listens ("local": no relay).
_ozs_watch_sidecar() {
    local content="" n=0
    while :; do
        content=""
        [[ -r $_ozs_sidecar ]] && IFS= read -r content <"$_ozs_sidecar"
        [[ -z $content ]] || break
        # Open, not stat: on NFS only an open is sure to see another host's write.
        if ((n++ < 100)); then _ozs_sleep 0.1; else _ozs_sleep 1; fi
    done
    [[ $content == local ]] && return 0
    # Looked up now, not at sync: a spec must not change with the Python that ran the sync.
    [[ -n $_ozs_relay_python ]] || _ozs_relay_python=$(type -P python3) ||
        _ozs_die "the kernel runs on another node and no python3 is on PATH to relay to it; set SlurmProfiles.relay_python"
    exec "$_ozs_relay_python" -I -S -c "$_ozs_relay_py" "$_ozs_cf" "$_ozs_sidecar" "$_ozs_kernel"
}

_ozs_supervise() {
    local out_fd=1 lock_fd rc watchers=()
    _ozs_job_name="" _ozs_pending_limit=0 _ozs_sidecar="" _ozs_cf="" _ozs_relay_python=""
    _ozs_profile=""
    while (($#)); do
        case $1 in
            --) shift; break ;;
            --kernel) _ozs_kernel=$2 ;;
            --job-name) _ozs_job_name=$2 ;;
            --pending-limit) _ozs_pending_limit=$2 ;;
            --sidecar) _ozs_sidecar=$2 ;;
            --connection-file) _ozs_cf=$2 ;;
            --relay-python) _ozs_relay_python=$2 ;;
            --profile) _ozs_profile=$2 ;;
            --stdout-fd) out_fd=$2 ;;
        esac
        shift 2
    done
    _ozs_user=$(id -un)
    # Stopped by hand (not by the wrapper): end the job too.
    trap '_ozs_cancel_until_gone' TERM HUP INT
    _ozs_limit_note=""
    ((_ozs_pending_limit > 0)) && _ozs_limit_note="; gives up after ${_ozs_pending_limit} s"
    _ozs_scancel=${1%/*}/scancel _ozs_squeue=${1%/*}/squeue
    [[ $1 == */* ]] || _ozs_scancel=scancel _ozs_squeue=squeue
    # One kernel per connection file at a time: a restart waits until the old job has ended.
    if [[ -n $_ozs_cf ]] && { exec {lock_fd}<"$_ozs_cf"; } 2>/dev/null; then
        flock -w 60 "$lock_fd" ||
            _ozs_say "the previous kernel on $_ozs_cf has not ended after 60 s; starting anyway"
    fi
    if [[ -n $_ozs_sidecar ]]; then
        (umask 077 && : >"$_ozs_sidecar") ||
            _ozs_die "cannot write $_ozs_sidecar next to the connection file"
    fi
    "$@" </dev/null >&"$out_fd" {_ozs_never}<&- &
    _ozs_srun_pid=$!
    _ozs_watch_wrapper <&0 &
    watchers+=($!)
    _ozs_watch_queue &
    watchers+=($!)
    if [[ -n $_ozs_sidecar ]]; then
        _ozs_watch_sidecar &
        watchers+=($!)
    fi
    wait "$_ozs_srun_pid"
    rc=$?
    kill "${watchers[@]}" 2>/dev/null
    wait "${watchers[@]}" 2>/dev/null
    [[ -z $_ozs_sidecar ]] || rm -f -- "$_ozs_sidecar"
    # Last: writing to a wrapper that is gone kills this shell with SIGPIPE.
    printf 'exit %d\n' "$rc"
    exit 0
}

# ---------------------------------------------------------------- wrapper (login side)
_ozs_wrapper() {
    local cf="" pending_limit=300 remote=auto address="" relay_python="" srun=srun srun_args=()
    local profile=""
    local submitted sidecar="" job_name out_fd line rc
    while (($#)); do
        case $1 in
            --) shift; break ;;
            --kernel | --connection-file | --pending-limit | --remote | --address | --relay-python | --srun | --srun-arg | --profile)
                (($# >= 2)) || _ozs_die "option $1 needs a value; $_ozs_usage" 2
                # Values from ozkernels come percent-encoded ('%', '{'): see ozkernels-launch.
                _ozs_v=${2//"%7B"/"{"}
                _ozs_v=${_ozs_v//"%25"/"%"}
                case $1 in
                    --kernel) _ozs_kernel=$_ozs_v ;;
                    --connection-file) cf=$2 ;;
                    --pending-limit) pending_limit=${2%.*} ;;
                    --remote) remote=$2 ;;
                    --address) address=$_ozs_v ;;
                    --relay-python) relay_python=$_ozs_v ;;
                    --srun) srun=$_ozs_v ;;
                    --srun-arg) srun_args+=("$_ozs_v") ;;
                    --profile) profile=$_ozs_v ;;
                esac
                shift 2
                ;;
            *) _ozs_die "unknown option '$1'; $_ozs_usage" 2 ;;
        esac
    done
    [[ -n $cf ]] || _ozs_die "--connection-file is missing; $_ozs_usage" 2
    (($#)) || _ozs_die "no launcher command after --; $_ozs_usage" 2
    [[ $pending_limit =~ ^[0-9]+$ ]] || _ozs_die "--pending-limit must be a number of seconds" 2
    case $remote in
        auto | always | never) ;;
        *) _ozs_die "--remote must be auto, always or never (got '$remote')" 2 ;;
    esac
    srun=$(type -P "$srun") ||
        _ozs_die "srun not found (PATH=$PATH): Slurm's client commands must be on the Jupyter server's PATH, or set SlurmProfiles.srun"
    if ! type -P setsid >/dev/null || ! type -P flock >/dev/null; then
        _ozs_die "setsid and flock (util-linux) are needed to run a kernel as a Slurm job"
    fi
    # An outer job (a Jupyter server running in a batch job) would turn srun into a step of it.
    for _ozs_v in "${!SLURM_@}" "${!SRUN_@}" "${!SALLOC_@}" "${!SBATCH_@}"; do
        [[ $_ozs_v == SLURM_CONF ]] || unset "$_ozs_v"
    done
    job_name="ozk-${_ozs_kernel}-${_ozs_host%%.*}-$$-$RANDOM$RANDOM"
    submitted=$(_ozs_now)
    [[ $remote == never ]] || sidecar=$cf.slurm-node
    local marker when why now dir=.
    [[ $cf != */* ]] || dir=${cf%/*}
    printf -v now '%(%s)T' -1
    # Jupyter removes only the connection file: old markers of any kernel are dropped here.
    for marker in "$dir"/*.slurm-gave-up; do
        [[ -f $marker ]] || continue
        when="" why=""
        read -r when why <"$marker" 2>/dev/null
        if [[ $when =~ ^[0-9]+$ ]] && ((now - when < _ozs_retry_after)); then
            [[ $marker != "$cf.slurm-gave-up" ]] ||
                _ozs_die "not queueing again within ${_ozs_retry_after} s: $why"
        else
            rm -f -- "$marker"
        fi
    done
    trap '_ozs_request cancel' TERM HUP
    trap '_ozs_request interrupt' INT
    exec {out_fd}>&1
    coproc _OZS_SUP {
        exec setsid "$BASH" -p "$_ozs_self" --supervise --kernel "$_ozs_kernel" \
            --job-name "$job_name" --pending-limit "$pending_limit" --sidecar "$sidecar" \
            --connection-file "$cf" --relay-python "$relay_python" --profile "$profile" \
            --stdout-fd "$out_fd" -- \
            "$srun" "${srun_args[@]}" --job-name="$job_name" --nodes=1 --ntasks=1 --input=none \
            "$_ozs_self" --node --kernel "$_ozs_kernel" --connection-file "$cf" \
            --submitted "$submitted" --login-host "$_ozs_host" --remote "$remote" \
            --address "$address" --sidecar "$sidecar" -- "$@"
    }
    # Own copies: bash closes a coproc's fds when it reaps it, maybe before its last line is read.
    exec {_ozs_from}<&"${_OZS_SUP[0]}" {_ozs_to}>&"${_OZS_SUP[1]}"
    exec {out_fd}>&-
    while :; do
        IFS= read -r -u "$_ozs_from" line
        rc=$?
        if ((rc == 0)); then
            [[ $line == "exit "* ]] && exit "${line#exit }"
        elif ((rc <= 128)); then
            _ozs_die "the Slurm supervisor ended without a status"
        fi
    done
}

_ozs_request() {
    if [[ -z ${_ozs_to:-} ]]; then
        [[ $1 == interrupt ]] || exit 143
        return 0
    fi
    { printf '%s\n' "$1" >&"$_ozs_to"; } 2>/dev/null
}

case ${1:-} in
    --node) shift; _ozs_node "$@" ;;
    --supervise)
        shift
        # A pipe that never delivers: read -t on it sleeps without a fork.
        exec {_ozs_never}<> <(:)
        _ozs_supervise "$@"
        ;;
    *) _ozs_wrapper "$@" ;;
esac
