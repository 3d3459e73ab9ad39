#!/bin/bash -p
# ozkernels Slurm wrapper: run an ozkernels kernel as a Slurm job and leave no job behind.
#
# ozkernels copies this file into a Slurm kernel's dir as "ozkernels-slurm"; kernel.json runs:
#   ozkernels-slurm --connection-file FILE [--kernel NAME] [--pending-limit SECONDS]
#                   [--remote auto|always|never] [--address ADDR|IFACE] [--relay-python PY]
#                   [--srun PATH] [--srun-arg ARG]... [--profile NAME] -- LAUNCHER ARG...
# where LAUNCHER ARG... is the kernel's ozkernels-launch command line (modules, activation).
#
# Two roles in this file (bash >= 4.4, util-linux setsid, Slurm's client commands, a python3):
# - the wrapper (jupyter_client's process) starts the supervisor, ozkernels-slurm-supervise.py
#   next to this file, in a session of its own and waits for its "exit RC" line.
#   jupyter_client SIGKILLs the wrapper's process group on a forced shutdown or restart; SIGKILL
#   to srun would leave the job running until InactiveLimit, so srun must not be in that group.
#   SIGTERM/SIGHUP cancel the job, SIGINT interrupts the kernel (scancel --signal=INT).
#   The supervisor runs srun, cancels the job when the wrapper is gone, reports queue waits,
#   gives up after --pending-limit and relays a remote kernel's ports (ozkernels-slurm-relay.py).
# - the node side (--node, run by srun in the job) prints one machine-readable line
#   "ozkernels-slurm: job=ID node=NAME queue_wait=SECONDS address=ADDR", on a remote node makes
#   the kernel listen on the node's address (a copy of the connection file, FILE.slurm-node, with
#   ports 0: ipykernel writes back the ports it bound), then execs LAUNCHER.
#
# Problems print "ozkernels: kernel 'NAME': ..." on stderr (Jupyter's server log); a failure
# (its own, or one the supervisor reports with a "fail LINE" line) also leaves that line in the
# kernel's start-failure record, as the launcher does.

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
    _ozs_record "$1"
    exit "${2:-1}"
}

# Where a failed start is recorded, as the launcher does (_ozk_failures, failures.py: same rule),
# so that the server, JupyterLab and 'ozkernels list' see a Slurm kernel's failures too.
_ozs_failures=${OZKERNELS_FAILURES_DIR:-${JUPYTER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/jupyter}/ozkernels/failures}
_ozs_conn=""

# Leave the one line (and the connection file) in <failures>/<kernel>, written atomically;
# best effort: a read-only or full disk must not change how the wrapper fails.
_ozs_record() {
    local file tmp
    [[ -n $_ozs_kernel && $_ozs_kernel != */* && $_ozs_kernel != .* ]] || return 0
    file=$_ozs_failures/$_ozs_kernel
    tmp=$_ozs_failures/.$_ozs_kernel.$$
    { [[ -d $_ozs_failures ]] || mkdir -p -- "$_ozs_failures"; } 2>/dev/null || return 0
    { printf '%s\n%s\n' "${1//$'\n'/ }" "${_ozs_conn//$'\n'/ }" >"$tmp" && mv -f -- "$tmp" "$file"; } 2>/dev/null ||
        rm -f -- "$tmp" 2>/dev/null
    return 0
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
                    --connection-file) cf=$2 _ozs_conn=$2 ;;
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
                    --connection-file) cf=$2 _ozs_conn=$2 ;;
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
    type -P setsid >/dev/null ||
        _ozs_die "setsid (util-linux) is needed to run a kernel as a Slurm job"
    # Looked up now, not at sync: a spec must not change with the Python that ran the sync.
    [[ -n $relay_python ]] || relay_python=$(type -P python3) ||
        _ozs_die "no python3 on PATH to supervise the Slurm job; set SlurmProfiles.relay_python"
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
        exec setsid "$relay_python" -I -S "${_ozs_self%/*}/ozkernels-slurm-supervise.py" \
            --kernel "$_ozs_kernel" --job-name "$job_name" --pending-limit "$pending_limit" \
            --sidecar "$sidecar" --connection-file "$cf" --profile "$profile" \
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
            case $line in
                "exit "*) exit "${line#exit }" ;;
                "fail "*) _ozs_record "${line#fail }" ;;  # the supervisor said why on stderr
            esac
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
    *) _ozs_wrapper "$@" ;;
esac
