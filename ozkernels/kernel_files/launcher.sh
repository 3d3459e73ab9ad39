#!/bin/bash -p
# ozkernels kernel launcher: load modules (Lmod or Environment Modules), activate a venv or
# conda env, exec the kernel
# (ipykernel, or with --exec the argv of a kernelspec the env ships: IRkernel, bash_kernel, ...).
#
# -p (privileged mode) keeps the server's environment from reprogramming this script: BASH_ENV
# is not sourced (no start-up cost either), exported functions are not imported (they stay in
# the environment for the kernel), SHELLOPTS, BASHOPTS and GLOBIGNORE are ignored.
#
# ozkernels copies this file into every kernel dir as "ozkernels-launch"; kernel.json runs:
#   ozkernels-launch --kind venv|conda|module --prefix PREFIX --python PYTHON [--name NAME]
#                    [--module MOD]... [--module-system lmod|tmod] [--module-cmd PATH]
#                    [--modulepath STR] [--kernel NAME] [--exec [--keep-env VAR]...] -- ARG...
# with every option value percent-encoded ('%' as %25, '{' as %7B), and the ARGs go verbatim to
# "PYTHON -m ipykernel_launcher"; with --exec they are the command itself, its ARG[0] looked up
# on the activated PATH (IRkernel's "R"), and each --keep-env VAR (the wrapped spec's "env",
# which jupyter_client set) is restored after activation, so it wins as it would for the spec
# started on its own.
#
# Every problem prints one line "ozkernels: kernel 'NAME': ..." on stderr and exits non-zero,
# because Jupyter only shows (or logs) what a dying kernel printed.  Names and paths are data:
# nothing is eval'ed except the module system's own output, export lines quoted by
# ozkernels-conda-env-vars.py and this file's own last part (the memo write's functions).
# Internal names start with _ozk_ so that sourced activate.d scripts are unlikely to clobber them
# (conda env var names are upper-cased, as conda does, so they cannot).

# Standard places of Lmod and of Environment Modules' modulecmd.tcl, tried last: ozkernels
# writes ozkernels.lmod.STANDARD_LMOD_CMDS and ozkernels.envmodules.STANDARD_MODULES_CMDS into
# these lines when it copies the launcher into a kernel dir (tests replace them too).
_ozk_lmod_std=()
_ozk_tmod_std=()

_ozk_self=$0
_ozk_env_vars_py=ozkernels-conda-env-vars.py
_ozk_kernel=${0%/*}
_ozk_kernel=${_ozk_kernel##*/}

_ozk_die() {
    local msg=${1//$'\n'/ }
    if [[ -n ${_ozk_memo_t0:-} ]]; then
        rm -f -- "$_ozk_memo_t0" ${_ozk_memo_errf:+"$_ozk_memo_errf"}
    fi
    printf "ozkernels: kernel '%s': %s\n" "${_ozk_kernel//$'\n'/ }" "$msg" >&2
    _ozk_record "$msg"
    exit "${2:-1}"
}

# Where a failed start is recorded for the server and 'ozkernels list' (failures.py, same rule).
_ozk_failures=${OZKERNELS_FAILURES_DIR:-${JUPYTER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/jupyter}/ozkernels/failures}
_ozk_conn=""

# Leave the one line (and the connection file) in <failures>/<kernel>, written atomically;
# best effort: a read-only or full disk must not change how the launcher fails.
_ozk_record() {
    local file tmp
    [[ -n $_ozk_kernel && $_ozk_kernel != */* && $_ozk_kernel != .* ]] || return 0
    file=$_ozk_failures/$_ozk_kernel
    tmp=$_ozk_failures/.$_ozk_kernel.$$
    { [[ -d $_ozk_failures ]] || mkdir -p -- "$_ozk_failures"; } 2>/dev/null || return 0
    { printf '%s\n%s\n' "$1" "${_ozk_conn//$'\n'/ }" >"$tmp" && mv -f -- "$tmp" "$file"; } 2>/dev/null ||
        rm -f -- "$tmp" 2>/dev/null
    return 0
}

# Strip one directory from PATH, matching whole elements only.
_ozk_path_remove() {
    local p=":$PATH:"
    [[ -n $1 ]] || return 0
    while [[ $p == *":$1:"* ]]; do
        p=${p//":$1:"/:}
    done
    p=${p#:}
    PATH=${p%:}
}

# Condense Lmod's stderr to one line: the error paragraph, else the first one.
_ozk_condense() {
    local line para="" first="" pick=""
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line//[$'\r\t']/ }
        if [[ -n ${line//[[:space:]]/} ]]; then
            para+=" $line"
            continue
        fi
        [[ -n $para ]] || continue
        [[ -n $first ]] || first=$para
        if [[ -z $pick && $para == *"Lmod has detected"* ]]; then pick=$para; fi
        para=""
    done <<<"$1"$'\n'
    pick=${pick:-${first:-no message from Lmod}}
    pick=${pick%%" While processing the following module(s):"*}
    while [[ $pick == *"  "* ]]; do pick=${pick//"  "/ }; done
    pick=${pick# }
    pick=${pick% }
    pick=${pick#"Lmod has detected the following error: "}
    ((${#pick} <= 400)) || pick="${pick:0:400}..."
    printf '%s' "$pick"
}

# Run Lmod's "$_ozk_mcmd bash ARGS..." and apply its output.  $1: the action, $2: the fix (messages).
_ozk_lmod_run() {
    local what=$1 fix=$2 code rc errf errtxt=""
    shift 2
    errf=$(mktemp "${TMPDIR:-/tmp}/ozkernels-lmod.XXXXXX" 2>/dev/null) || errf=""
    # A set width spares Lmod asking the terminal (stty, tput: four processes, ~6 ms a load).
    code=$(LMOD_COLORIZE=no LMOD_PAGER=none LMOD_TERM_WIDTH=${LMOD_TERM_WIDTH:-200} \
        "$_ozk_mcmd" bash "$@" 2>"${errf:-/dev/null}")
    rc=$?
    if [[ -n $errf ]]; then
        errtxt=$(<"$errf")
        rm -f -- "$errf"
    fi
    # Lmod 8.6 ends its output with "false" and exits 1 on an error *and* on a warning; only
    # an error prints nothing else (all or nothing).  Messages may be translated, so the output
    # decides; a warning is not fatal as long as every requested module really ends up loaded
    # (checked by the caller).
    if [[ $code == false || $code == *$'\n'false ]]; then
        code=${code%false}
    fi
    if ((rc != 0)) && [[ -z ${code//[[:space:]]/} ]]; then
        _ozk_die "$what failed: $(_ozk_condense "$errtxt")$fix"
    fi
    eval "$code" || _ozk_die "$what failed: Lmod's output did not apply$fix"
    _ozk_memo_note "$code"
    if [[ -n $errtxt ]]; then
        printf '%s\n' "$errtxt" >&2
        _ozk_memo_err+="${_ozk_memo_err:+$'\n'}$errtxt"
    fi
    return 0
}

# Condense Environment Modules' report to one line: its ERROR lines, each with the module whose
# load raised it.
_ozk_tmod_condense() {
    local line loading="" msg out="" first=""
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line//[$'\r\t']/ }
        [[ -n $first || -z ${line//[[:space:]]/} ]] || first=$line
        if [[ $line =~ ^(Loading|Unloading)\ ([^[:space:]]+) ]]; then
            loading=${BASH_REMATCH[2]}
        elif [[ $line == *"ERROR: "* ]]; then
            msg=${line#*ERROR: }
            if [[ -n $loading && $msg != *"$loading"* ]]; then msg="$loading: $msg"; fi
            out+="${out:+; }$msg"
        fi
    done <<<"$1"
    # No ERROR line: modulecmd.tcl itself did not run (tclsh missing or broken); say why.
    out=${out:-${first:-no message from Environment Modules}}
    ((${#out} <= 400)) || out="${out:0:400}..."
    printf '%s' "$out"
}

# Run modulecmd.tcl for bash (in the $(...) of the caller: its exports go nowhere else), with
# MODULES_RUN_QUARANTINE applied as Environment Modules' own `module` function does.
_ozk_tmod_exec() {
    local v rv
    local -a quar
    read -ra quar <<<"${MODULES_RUN_QUARANTINE:-}"
    for v in "${quar[@]}"; do
        [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        if [[ -n ${!v+x} ]]; then export "__MODULES_QUAR_$v=${!v}"; fi
        rv="MODULES_RUNENV_$v"
        export "$v=${!rv:-}"
        export __MODULES_QUARANTINE_SET=1
    done
    export MODULES_PAGER="" MODULES_COLOR=never MODULES_VERBOSITY=${MODULES_VERBOSITY:-concise}
    if [[ -x $_ozk_mcmd ]]; then
        exec "$_ozk_mcmd" bash "$@"
    fi
    exec tclsh "$_ozk_mcmd" bash "$@"
}

# Run "modulecmd.tcl bash ARGS..." and apply its output.  $1: the action, $2: the fix.
_ozk_tmod_run() {
    local what=$1 fix=$2 code errf errtxt=""
    shift 2
    errf=$(mktemp "${TMPDIR:-/tmp}/ozkernels-modules.XXXXXX" 2>/dev/null) || errf=""
    code=$(_ozk_tmod_exec "$@" 2>"${errf:-/dev/null}")
    if [[ -n $errf ]]; then
        errtxt=$(<"$errf")
        rm -f -- "$errf"
    fi
    # modulecmd.tcl exits 0 even when a module fails: its code then ends in "test 0 = 1;".
    if [[ -z $code ]] || ! eval "$code"; then
        _ozk_die "$what failed: $(_ozk_tmod_condense "$errtxt")$fix"
    fi
    _ozk_memo_note "$code"
    if [[ -n $errtxt ]]; then
        printf '%s\n' "$errtxt" >&2
        _ozk_memo_err+="${_ozk_memo_err:+$'\n'}$errtxt"
    fi
    return 0
}

# ---------------------------------------------------------------- launch memo
# The module step (purge the server's modules, load the kernel's) is a function of the
# variables it writes and of files: the same values and unchanged files give the same result.
# A real step records, per kernel dir and host, those variables' values before and after and
# every file and dir it depends on (modulefiles, MODULEPATH dirs and the package dirs in them,
# module-system config, this launcher); the next start applies the result without running the
# module system when every value is equal and every path is still older than the memo
# (mtime set to just before the recording step ran).  Anything else runs the real step.
# Memos live in ${XDG_CACHE_HOME:-~/.cache}/ozkernels/launch (OZKERNELS_LAUNCH_CACHE=0: off).
# Inputs in the key besides the variables written: HOME, USER, the module systems' own
# LMOD_*/MODULES* settings, and every variable the modulefiles unloaded and loaded and Lmod's
# SitePackage.lua hooks read by a literal name (Lua os.getenv "X"; Tcl $env(X), env(X) in
# `info exists`, getenv X).  A file that reads one by a computed name (os.getenv(v), $env($v),
# `array get env`, os.getenv through a helper), runs a command (capture, execute, exec, ...)
# or loads other code (dofile, Tcl source; a named Lua require is library code) gets no memo:
# that step runs for real at every start (isloaded and the like read LOADEDMODULES and
# _LMFILES_, keyed as written).  Not keyed: what rc files (.modulerc, .version, Environment
# Modules' siteconfig.tcl) and required Lua libraries read, and the time.  Memos unused for
# OZKERNELS_LAUNCH_CACHE_DAYS go (_ozk_memo_prune), a removed kernel's at once (launchmemo.py).
_ozk_memo_version=2
_ozk_memo="" _ozk_memo_err="" _ozk_memo_t0=""
_ozk_memo_written=()
_ozk_memo_watch=()
_ozk_memo_hooks=()
_ozk_memo_reads=()

# Sets _ozk_memo, the memo files' common path ('' when off or no cache dir is usable).
_ozk_memo_init() {
    # Lengths in bytes, whatever the server's locale: a name must fit in 255 of them.
    local base=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}} self=$0 id LC_ALL=C
    _ozk_memo=""
    [[ ${OZKERNELS_LAUNCH_CACHE:-1} != 0 && $base == /* ]] || return 0
    # mapfile -d, local -n and ${v@a} need bash 4.4; older shells just run the real step.
    ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404)) || return 0
    [[ $self == /* ]] || self=$PWD/$self
    _ozk_memo_self=$self
    id=${self%/*}
    id=${id//%/%25}
    id=${id//\//%2F}
    # A shortened name may collide: the memo's own id then does not match, so it only misses.
    ((${#id} <= 180)) || id="${#id}-${id: -170}"
    _ozk_memo="$base/ozkernels/launch/$id@${HOSTNAME:-host}"
}

# Names of the variables a module system's shell output assigns or unsets, for the memo.
_ozk_memo_note() {
    local line re='^[[:space:]]*(unset[[:space:]]+|export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)'
    [[ -n $_ozk_memo ]] || return 0
    while IFS= read -r line; do
        [[ $line =~ $re ]] && _ozk_memo_written+=("${BASH_REMATCH[2]}")
    done <<<"$1"
}

# Define the functions only a memo write needs (below the final exec: bash parses a script
# as it runs it, so a start whose memos apply never reads them: 1 ms of parsing saved).
# 1 when memos are off or the functions cannot be had.
_ozk_memo_defs() {
    # C: any byte is a character to the regex (the file is ASCII; this is for certain).
    local src LC_ALL=C
    [[ -n $_ozk_memo ]] || return 1
    [[ -z ${_ozk_memo_defined-} ]] || return 0
    # A sync replaces the file by a rename: bash goes on reading the one it opened (Linux: fd
    # 255), whose tail must be the one defined, so a replaced one gives no memo this time.
    [[ ! -e /proc/$$/fd/255 || /proc/$$/fd/255 -ef $_ozk_memo_self ]] || return 1
    { IFS= read -r -d '' src <"$_ozk_memo_self"; } 2>/dev/null
    # 3 ms; ${src#*MARKER} takes seconds (bash tries the pattern at every prefix).
    [[ $src =~ $'\n# @ozk-memo-write\n'(.*) ]] || return 1
    eval "${BASH_REMATCH[1]}" && _ozk_memo_defined=1
}

# A memo is NUL-separated fields (read with mapfile, never executed): a header, the id it was
# recorded for, the variables written (name, value before, value after: +VALUE or - for
# unset), the inputs read (name, value), the module systems' setting names, the paths that
# must be older than the memo, the paths that must be absent, the step's stderr, "end".
# A count field is checked to be a number before it is used.
_ozk_memo_count() {
    [[ -n $1 && $1 != *[!0-9]* && ${#1} -lt 7 ]]
}

# A memo's two counted path lists, from the caller's m[i] on: paths that must exist and be
# older than the memo file $1, then paths that must still be absent; leaves i after them.
_ozk_memo_paths() {
    local k=${m[i]}
    _ozk_memo_count "$k" || return 1
    for ((i++; k > 0; k--, i++)); do
        [[ -e ${m[i]} && ${m[i]} -ot $1 ]] || return 1
    done
    k=${m[i]}
    _ozk_memo_count "$k" || return 1
    for ((i++; k > 0; k--, i++)); do
        [[ ! -e ${m[i]} && ! -L ${m[i]} ]] || return 1
    done
}

# Apply the memo if it is valid here and now; 1 (nothing changed) otherwise.
_ozk_memo_apply() {
    local -a m=()
    local i j k n v w nw
    [[ -n $_ozk_memo && -f $_ozk_memo_f && -O $_ozk_memo_f ]] || return 1
    mapfile -d '' -t m <"$_ozk_memo_f" 2>/dev/null || return 1
    [[ ${#m[@]} -gt 8 && ${m[0]} == "ozkernels-launch-memo $_ozk_memo_version" ]] || return 1
    k=${m[1]} i=2
    [[ $k == "${#_ozk_memo_id[@]}" ]] || return 1
    for ((j = 0; j < k; j++)); do
        [[ ${m[i + j]} == "${_ozk_memo_id[j]}" ]] || return 1
    done
    ((i += k))
    for w in 3 2; do
        k=${m[i]}
        _ozk_memo_count "$k" || return 1
        ((w == 3)) && nw=$k && ((j = i + 1))
        for ((i++; k > 0; k--, i += w)); do
            n=${m[i]} v=${m[i + 1]}
            [[ $n == [A-Za-z_]* && $n != *[!A-Za-z0-9_]* && ${!n@a} != *r* ]] || return 1
            # The module system sees only exported variables (bash sets HOSTNAME unexported).
            if [[ $v == +* ]]; then
                [[ ${!n@a} == *x* && ${!n} == "${v:1}" ]] || return 1
            else
                [[ $v == - && ${!n@a} != *x* ]] || return 1
            fi
        done
    done
    w=$j
    # Module-system settings the server has now, by name, must be what they were.
    [[ "${!LMOD_@} ${!MODULES@}" == "${m[i]}" ]] || return 1
    ((i++))
    _ozk_memo_paths "$_ozk_memo_f" || return 1
    [[ ${m[i + 1]-} == end && $((i + 2)) == "${#m[@]}" ]] || return 1
    for ((; nw > 0; nw--, w += 3)); do
        n=${m[w]} v=${m[w + 2]}
        if [[ $v == +* ]]; then
            export "$n=${v:1}"
        else
            unset "$n"
        fi
    done
    [[ -z ${m[i]} ]] || printf '%s\n' "${m[i]}" >&2
    return 0
}

# Run a module step (purge or load) through its memo: applied when valid, else the real step
# runs and is recorded.  The two are remembered apart, so a change to the kernel's modules
# costs one Lmod run (the load), and so does a server with other modules (the purge).
_ozk_memo_step() {
    _ozk_memo_ok="" _ozk_memo_err="" _ozk_memo_written=() _ozk_memo_watch=() _ozk_memo_hooks=()
    _ozk_memo_f=$_ozk_memo.$1
    _ozk_memo_id=("$_ozk_memo_version" "$1" "${_ozk_memo_self-}" "$HOSTTYPE" "$_ozk_msys_arg"
        "$_ozk_lmod_arg" "$_ozk_tmod_arg")
    [[ $1 == purge ]] ||
        _ozk_memo_id+=("$_ozk_modulepath" "${#_ozk_modules[@]}" "${_ozk_modules[@]}")
    if _ozk_memo_apply; then
        return 0
    elif _ozk_memo_defs; then
        _ozk_memo_begin
        "$2"
        _ozk_memo_end "$1"
    else
        "$2"
    fi
}

# Find the module system without the `module` function (sets _ozk_msys, lmod or tmod, and
# _ozk_mcmd): the recorded system's command from its own variable, the path recorded at sync,
# standard places; with none recorded, the one the server's environment initialised first.
# 1 when there is none, fatal when modules are needed.
_ozk_modsys_find() {
    local sys c
    local -a order cands
    [[ -z ${_ozk_mcmd:-} ]] || return 0
    case $_ozk_msys_arg in
        lmod | tmod) order=("$_ozk_msys_arg") ;;
        *) if [[ -n ${MODULES_CMD:-} && -z ${LMOD_CMD:-} ]]; then order=(tmod lmod); else order=(lmod tmod); fi ;;
    esac
    for sys in "${order[@]}"; do
        if [[ $sys == lmod ]]; then
            cands=("${LMOD_CMD:-}" "$_ozk_lmod_arg" "${LMOD_PKG:+$LMOD_PKG/libexec/lmod}" "${_ozk_lmod_std[@]}")
        else
            cands=("${MODULES_CMD:-}" "$_ozk_tmod_arg" "${MODULESHOME:+$MODULESHOME/libexec/modulecmd.tcl}" "${_ozk_tmod_std[@]}")
        fi
        for c in "${cands[@]}"; do
            # modulecmd.tcl runs through tclsh when it is not executable.
            if [[ -n $c && -f $c ]] && [[ $sys == tmod || -x $c ]]; then
                _ozk_msys=$sys _ozk_mcmd=$c
                return 0
            fi
        done
    done
    _ozk_msys=${order[0]}
    if ((${#_ozk_modules[@]})); then
        if [[ $_ozk_msys == tmod ]]; then
            _ozk_die "Environment Modules not found, but modules are needed (${_ozk_modules[*]}); set MODULES_CMD to its modulecmd.tcl or install Environment Modules"
        fi
        _ozk_die "Lmod not found, but modules are needed (${_ozk_modules[*]}); set LMOD_CMD to Lmod's libexec/lmod or install Lmod"
    fi
    return 1
}

# Run the module system's command with ARGS and apply its output.  $1: the action, $2: the fix.
_ozk_module_run() {
    if [[ $_ozk_msys == tmod ]]; then _ozk_tmod_run "$@"; else _ozk_lmod_run "$@"; fi
}

# What the module system reads besides modulefiles, for the memo.
_ozk_modsys_watch() {
    if [[ $_ozk_msys == tmod ]]; then _ozk_tmod_watch; else _ozk_lmod_watch; fi
}

# The purge step: the server's modules go, as `module --force purge` does.  Sets
# _ozk_memo_ok when the module system ran and succeeded (only then is a step remembered).
_ozk_modules_purge() {
    local working="LMOD_CMD to a working Lmod"
    _ozk_modsys_find || return 0
    [[ $_ozk_msys != tmod ]] || working="MODULES_CMD to a working Environment Modules"
    _ozk_module_run "unloading the server's modules ($LOADEDMODULES)" \
        "; set $working, or unload them before starting Jupyter" --force purge
    _ozk_modsys_watch
    _ozk_memo_ok=1
}

# The load step: make the recorded MODULEPATH dirs findable, load the recorded modules,
# verify they are loaded.
_ozk_modules_load() {
    local d m fix
    local -a mp
    _ozk_modsys_find || return 0
    fix="; the module may have been removed or renamed: run 'ozkernels sync', or 'ozkernels add $_ozk_prefix --module NEW'"
    # The server may run with a different MODULEPATH than the sync did (systemd, a hub):
    # the recorded dirs are appended so the recorded modules stay findable.
    IFS=: read -ra mp <<<"$_ozk_modulepath"
    for d in "${mp[@]}"; do
        if [[ -n $d && ":${MODULEPATH:-}:" != *":$d:"* ]]; then
            MODULEPATH="${MODULEPATH:+$MODULEPATH:}$d"
        fi
    done
    export MODULEPATH
    if ((${#_ozk_modules[@]})); then
        _ozk_module_run "module load ${_ozk_modules[*]}" "$fix" load "${_ozk_modules[@]}"
        for m in "${_ozk_modules[@]}"; do
            if [[ ":${LOADEDMODULES:-}:" != *":$m:"* && ":${LOADEDMODULES:-}:" != *":$m/"* ]]; then
                _ozk_die "module load ${_ozk_modules[*]} failed: '$m' is not loaded afterwards (LOADEDMODULES=${LOADEDMODULES:-})$fix"
            fi
        done
    fi
    _ozk_modsys_watch
    _ozk_memo_ok=1
}

# What Lmod reads besides modulefiles: itself, its site and user configuration, and its
# SitePackage.lua hooks (LMOD_PACKAGE_PATH's dirs, else its own), which the memo also scans.
_ozk_lmod_watch() {
    local d=${_ozk_mcmd%/*} p
    local -a pkg
    IFS=: read -ra pkg <<<"${LMOD_PACKAGE_PATH-}"
    for p in "${pkg[@]}"; do
        [[ -z $p ]] || _ozk_memo_hooks+=("$p/SitePackage.lua")
    done
    _ozk_memo_hooks+=("$d/SitePackage.lua")
    _ozk_memo_watch+=("$_ozk_mcmd" "$d" "${d%/*}/init/lmodrc.lua" /etc/lmod /etc/lmod/lmodrc.lua
        /etc/lmod/lmod_config.lua "${LMOD_RC-}" "${LMOD_MODULERCFILE-}" "${MODULERCFILE-}"
        "${_ozk_memo_hooks[@]}" "${LMOD_CONFIG_DIR-}")
    if [[ -n ${HOME-} ]]; then
        _ozk_memo_watch+=("$HOME/.modulerc.lua" "$HOME/.modulerc" "$HOME/.lmodrc.lua")
    fi
}

# What Environment Modules reads besides modulefiles: itself, its site config and rc files
# (Debian's in /etc/environment-modules, upstream's in PREFIX/etc), the user's rc files.
_ozk_tmod_watch() {
    local d=${_ozk_mcmd%/*}
    d=${d%/*}
    _ozk_memo_watch+=("$_ozk_mcmd" "${_ozk_mcmd%/*}" /etc/environment-modules
        /etc/environment-modules/siteconfig.tcl /etc/environment-modules/rc
        "$d/etc/siteconfig.tcl" "$d/etc/rc" "${MODULES_SITECONFIG-}" "${MODULERCFILE-}")
    if [[ -n ${HOME-} ]]; then
        _ozk_memo_watch+=("$HOME/.modulerc" "$HOME/.config/modules")
    fi
}

# The conda env vars memo: the same files (conda-meta/state, etc/conda/env_vars.d) read by
# the same interpreter give the same export lines.  Fields: header, launcher, interpreter,
# prefix, the export lines, their stderr, the paths older than the memo, the paths absent,
# "end".  Sets _ozk_code; 1 when there is no valid memo.
_ozk_vars_apply() {
    local -a m=()
    local i f=$_ozk_memo.vars
    [[ -n $_ozk_memo && -f $f && -O $f ]] || return 1
    mapfile -d '' -t m <"$f" 2>/dev/null || return 1
    [[ ${#m[@]} -gt 7 && ${m[0]} == "ozkernels-conda-vars-memo $_ozk_memo_version" &&
        ${m[1]} == "$0" && ${m[2]} == "$_ozk_python" && ${m[3]} == "$_ozk_prefix" ]] || return 1
    i=6
    _ozk_memo_paths "$f" || return 1
    [[ ${m[i]-} == end && $((i + 1)) == "${#m[@]}" ]] || return 1
    _ozk_code=${m[4]}
    [[ -z ${m[5]} ]] || printf '%s\n' "${m[5]}" >&2
    return 0
}

# conda sorts activate.d scripts by code point, as the C collation does.
_ozk_activate_scripts() {
    local LC_ALL=C
    _ozk_scripts=("$_ozk_prefix"/etc/conda/activate.d/*.sh)
}

# ---------------------------------------------------------------- arguments
_ozk_after=0
for ((_ozk_i = 1; _ozk_i < $#; _ozk_i++)); do
    _ozk_j=$((_ozk_i + 1))
    if [[ ${!_ozk_i} == -- ]]; then
        _ozk_after=1
    elif ((_ozk_after)) && [[ ${!_ozk_i} == -f ]]; then
        _ozk_conn=${!_ozk_j}
    elif ((!_ozk_after)) && [[ ${!_ozk_i} == --kernel ]]; then
        _ozk_kernel=${!_ozk_j}
        _ozk_kernel=${_ozk_kernel//"%7B"/"{"}
        _ozk_kernel=${_ozk_kernel//"%25"/"%"}
    fi
done

_ozk_kind="" _ozk_prefix="" _ozk_python="" _ozk_name="" _ozk_modulepath=""
_ozk_msys_arg="" _ozk_mcmd_arg="" _ozk_lmod_arg="" _ozk_tmod_arg=""
_ozk_modules=() _ozk_exec=0 _ozk_keep=()
_ozk_usage="usage: ozkernels-launch --kind venv|conda|module --prefix PREFIX --python PYTHON"
_ozk_usage+=" [--name NAME] [--module MOD]... [--module-system lmod|tmod] [--module-cmd PATH]"
_ozk_usage+=" [--modulepath STR]"
_ozk_usage+=" [--kernel NAME] [--exec [--keep-env VAR]...] -- ARG...; re-create the kernel with"
_ozk_usage+=" 'ozkernels sync'"
while (($#)); do
    case $1 in
        --) shift; break ;;
        --exec) _ozk_exec=1; shift ;;
        --keep-env)
            (($# >= 2)) || _ozk_die "option $1 needs a value; $_ozk_usage" 2
            [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _ozk_die "--keep-env '$2' is not a variable name; $_ozk_usage" 2
            _ozk_keep+=("$2")
            shift 2
            ;;
        --kind | --prefix | --python | --name | --module | --module-system | --module-cmd | \
            --lmod-cmd | --modulepath | --kernel)
            (($# >= 2)) || _ozk_die "option $1 needs a value; $_ozk_usage" 2
            # Values come percent-encoded ('%' and '{'): jupyter_client rewrites any {word}.
            _ozk_v=${2//"%7B"/"{"}
            _ozk_v=${_ozk_v//"%25"/"%"}
            case $1 in
                --kind) _ozk_kind=$_ozk_v ;;
                --prefix) _ozk_prefix=$_ozk_v ;;
                --python) _ozk_python=$_ozk_v ;;
                --name) _ozk_name=$_ozk_v ;;
                --module) _ozk_modules+=("$_ozk_v") ;;
                --module-system) _ozk_msys_arg=$_ozk_v ;;
                --module-cmd) _ozk_mcmd_arg=$_ozk_v ;;
                --lmod-cmd) _ozk_msys_arg=${_ozk_msys_arg:-lmod} _ozk_lmod_arg=$_ozk_v ;;
                --modulepath) _ozk_modulepath=$_ozk_v ;;
                --kernel) _ozk_kernel=$_ozk_v ;;
            esac
            shift 2
            ;;
        *) _ozk_die "unknown option '$1'; $_ozk_usage" 2 ;;
    esac
done
case $_ozk_kind in
    venv | conda | module) ;;
    *) _ozk_die "--kind must be venv, conda or module (got '$_ozk_kind'); $_ozk_usage" 2 ;;
esac
case $_ozk_msys_arg in
    "" | lmod | tmod) ;;
    *) _ozk_die "--module-system must be lmod or tmod (got '$_ozk_msys_arg'); $_ozk_usage" 2 ;;
esac
if [[ -n $_ozk_mcmd_arg ]]; then
    case $_ozk_msys_arg in
        tmod) _ozk_tmod_arg=$_ozk_mcmd_arg ;;
        *) _ozk_lmod_arg=$_ozk_mcmd_arg ;;
    esac
fi
[[ -n $_ozk_prefix ]] || _ozk_die "--prefix is missing; $_ozk_usage" 2
((_ozk_exec)) || [[ -n $_ozk_python ]] || _ozk_die "--python is missing; $_ozk_usage" 2
((!_ozk_exec || $#)) || _ozk_die "--exec needs the kernel's command after --; $_ozk_usage" 2

# The wrapped spec's env values, as jupyter_client set them, before anything below changes them.
_ozk_keep_set=() _ozk_keep_val=()
for _ozk_v in "${_ozk_keep[@]}"; do
    if [[ -n ${!_ozk_v+set} ]]; then
        _ozk_keep_set+=("$_ozk_v")
        _ozk_keep_val+=("${!_ozk_v}")
    fi
done

# ---------------------------------------------------------------- 1. clear the server's env
# The Jupyter server may itself run inside a venv or conda env; none of that may leak in.
_ozk_path_remove "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin}"
_ozk_path_remove "${CONDA_PREFIX:+$CONDA_PREFIX/bin}"
for _ozk_v in "${!CONDA_PREFIX_@}"; do
    [[ $_ozk_v =~ ^CONDA_PREFIX_[0-9]+$ ]] && _ozk_path_remove "${!_ozk_v:+${!_ozk_v}/bin}"
done
for _ozk_v in "${!CONDA_@}"; do
    unset "$_ozk_v"
done
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV VIRTUAL_ENV_PROMPT _CE_CONDA _CE_M

# ---------------------------------------------------------------- 3. check (before modules: cheaper)
if [[ ! -d $_ozk_prefix ]]; then
    _ozk_die "environment prefix '$_ozk_prefix' no longer exists; run 'ozkernels sync' to remove this kernel"
fi
if ((!_ozk_exec)) && [[ ! -f $_ozk_python || ! -x $_ozk_python ]]; then
    _ozk_die "interpreter '$_ozk_python' is missing or not executable; the environment is broken: repair it, or run 'ozkernels sync' to remove this kernel"
fi

# ---------------------------------------------------------------- 2. modules
_ozk_memo_init
if ((${#_ozk_modules[@]})) || [[ -n ${LOADEDMODULES:-} ]]; then
    [[ -z ${LOADEDMODULES:-} ]] || _ozk_memo_step purge _ozk_modules_purge
    if ((${#_ozk_modules[@]})); then
        _ozk_memo_step load _ozk_modules_load
    else
        _ozk_modules_load
    fi
fi

# ---------------------------------------------------------------- 4. activate
case $_ozk_kind in
    venv)
        export VIRTUAL_ENV=$_ozk_prefix
        export PATH="$_ozk_prefix/bin${PATH:+:$PATH}"
        ;;
    conda)
        export CONDA_PREFIX=$_ozk_prefix
        export CONDA_DEFAULT_ENV=${_ozk_name:-$_ozk_prefix}
        export CONDA_SHLVL=1
        export CONDA_PROMPT_MODIFIER="($CONDA_DEFAULT_ENV) "
        export PATH="$_ozk_prefix/bin${PATH:+:$PATH}"
        # Only pay for a Python start when there is something to parse, and not again while
        # the files are unchanged (the launch memo).
        _ozk_vars=("$_ozk_prefix"/etc/conda/env_vars.d/*)
        if [[ -e ${_ozk_vars[0]} || -f $_ozk_prefix/conda-meta/state ]]; then
            if ! _ozk_vars_apply; then
                _ozk_memo_errf="" _ozk_memo_t0=""
                ! _ozk_memo_defs || _ozk_vars_begin
                # An R-only env has no Python of its own: any python3 reads the JSON as well.
                _ozk_json_py=$_ozk_python
                if [[ -z $_ozk_json_py || ! -f $_ozk_json_py || ! -x $_ozk_json_py ]]; then
                    _ozk_json_py=$(type -P python3 || type -P python) ||
                        _ozk_die "'$_ozk_prefix' has conda env vars (conda-meta/state or etc/conda/env_vars.d) but no Python reads them: put a python3 on the server's PATH"
                fi
                # The helper sits next to this launcher in the kernel dir (argv[0] is absolute).
                _ozk_code=$("$_ozk_json_py" -I -S "${_ozk_self%/*}/$_ozk_env_vars_py" "$_ozk_prefix" 2>"${_ozk_memo_errf:-/dev/stderr}") ||
                    _ozk_die "could not read the conda env vars of '$_ozk_prefix' with '$_ozk_json_py' (exit status $?); check $_ozk_prefix/conda-meta/state and etc/conda/env_vars.d"
                [[ -z $_ozk_memo_t0 ]] || _ozk_vars_end
            fi
            eval "$_ozk_code"
        fi
        _ozk_args=("$@")
        set --
        _ozk_activate_scripts
        for _ozk_s in "${_ozk_scripts[@]}"; do
            if [[ -f $_ozk_s ]]; then
                # Package scripts are written for an interactive shell: no -e/-u from here. One
                # that exits (or trips its own set -e) would end the launcher without a word.
                set +eu
                trap '_ozk_die "activate.d script $_ozk_s exited the launcher (exit status $?); fix or remove it"' EXIT
                # Its stdout would be the kernel's: what it prints goes to stderr (the log).
                # shellcheck disable=SC1090
                . "$_ozk_s" >&2
                _ozk_rc=$?
                trap - EXIT
                ((_ozk_rc == 0)) ||
                    _ozk_die "activate.d script $_ozk_s failed (exit status $_ozk_rc); fix or remove it"
            fi
        done
        set -- "${_ozk_args[@]}"
        ;;
esac

# ---------------------------------------------------------------- 5. exec the kernel
# This start works: an earlier failure is no longer the kernel's state (one stat when none).
if [[ -e $_ozk_failures/$_ozk_kernel && $_ozk_kernel != */* ]]; then
    rm -f -- "$_ozk_failures/$_ozk_kernel" 2>/dev/null
fi
if ((_ozk_exec)); then
    for _ozk_i in "${!_ozk_keep_set[@]}"; do
        export "${_ozk_keep_set[_ozk_i]}=${_ozk_keep_val[_ozk_i]}"
    done
    if [[ $1 == */* ]]; then
        [[ -f $1 && -x $1 ]] || _ozk_die "kernel command '$1' is missing or not executable; was the kernel uninstalled from '$_ozk_prefix'? Reinstall it, or run 'ozkernels sync' to remove this kernel"
    elif ! type -P -- "$1" >/dev/null; then
        _ozk_die "kernel command '$1' is not on the activated PATH ($PATH); was it uninstalled from '$_ozk_prefix'? Reinstall it, or run 'ozkernels sync' to remove this kernel"
    fi
    exec "$@"
fi
# shellcheck disable=SC2093 # only definitions follow (a failed exec ends a script)
exec "$_ozk_python" -m ipykernel_launcher "$@"

# ---------------------------------------------------------------- what a memo write needs
# Only function definitions: _ozk_memo_defs reads them from the line after the marker on.
# @ozk-memo-write
# Every exported variable as NAME -> +VALUE (the + tells an empty value from none).
_ozk_memo_snapshot() {
    local -n _ozk_snap=$1
    local v
    _ozk_snap=()
    while IFS= read -r v; do
        [[ $v == _ ]] || _ozk_snap["$v"]=+${!v}
    done < <(compgen -e)
}

# Start recording: the time reference and the variables before the real step.
_ozk_memo_begin() {
    _ozk_memo_t0=""
    _ozk_memo_dir || return 0
    _ozk_memo_t0="$_ozk_memo.$$.t0"
    if ! : 2>/dev/null >"$_ozk_memo_t0"; then
        _ozk_memo_t0=""
        return 0
    fi
    declare -gA _ozk_memo_before=()
    _ozk_memo_snapshot _ozk_memo_before
    _ozk_memo_fns=$(declare -F)
    _ozk_memo_cfg="${!LMOD_@} ${!MODULES@}"
}

# After a successful real step: write the memo (silently skipped when anything is unusual).
_ozk_memo_end() {
    [[ -n $_ozk_memo && -n $_ozk_memo_t0 ]] || return 0
    if [[ -z ${_ozk_memo_ok:-} ]]; then
        rm -f -- "$_ozk_memo_t0"
        return 0
    fi
    local -A after=() seen=()
    local -a written=() inputs=() mw=() ma=() mps=() files=() out=()
    local n d m part tmp="$_ozk_memo.$$.tmp"
    _ozk_memo_snapshot after
    # Functions or a new working dir cannot be replayed from variables: no memo then.
    if [[ $(declare -F) != "$_ozk_memo_fns" || ${after[PWD]-} != "${_ozk_memo_before[PWD]-}" ]]; then
        rm -f -- "$_ozk_memo_t0"
        return 0
    fi
    for n in "${!after[@]}" "${!_ozk_memo_before[@]}"; do
        [[ ${after[$n]-} == "${_ozk_memo_before[$n]-}" ]] || _ozk_memo_written+=("$n")
    done
    for n in MODULEPATH LOADEDMODULES _LMFILES_ "${_ozk_memo_written[@]}"; do
        [[ -z ${seen[$n]-} ]] || continue
        seen[$n]=1
        if [[ $n != [A-Za-z_]* || $n == *[!A-Za-z0-9_]* || ${!n@a} == *r* ]]; then
            rm -f -- "$_ozk_memo_t0"
            return 0
        fi
        written+=("$n" "${_ozk_memo_before[$n]--}" "${after[$n]--}")
    done
    # The modulefiles read (the server's and the kernel's), every MODULEPATH dir before and
    # after, and in each the dirs a recorded module's name goes through (a new modulefile
    # there, which could shadow the one loaded, changes their mtime).
    IFS=: read -ra mps <<<"${_ozk_memo_before[MODULEPATH]#+}:${MODULEPATH-}:$_ozk_modulepath"
    IFS=: read -ra files <<<"${_ozk_memo_before[_LMFILES_]#+}:${_LMFILES_-}"
    # Inputs the step reads: the module systems' settings, the user, and what the modulefiles
    # and hooks read (values before the step; unknowable reads: no memo).
    _ozk_memo_reads=()
    if ! _ozk_memo_scan "${files[@]}" "${_ozk_memo_hooks[@]}"; then
        rm -f -- "$_ozk_memo_t0"
        return 0
    fi
    for n in HOME USER $_ozk_memo_cfg "${_ozk_memo_reads[@]}"; do
        [[ -z ${seen[$n]-} ]] || continue
        seen[$n]=1
        # A read-only name (UID, PPID, ...) could never be checked: no memo.
        if [[ ${!n@a} == *r* ]]; then
            rm -f -- "$_ozk_memo_t0"
            return 0
        fi
        inputs+=("$n" "${_ozk_memo_before[$n]--}")
    done
    _ozk_memo_watch+=("$0" "${files[@]}")
    for d in "${mps[@]}"; do
        [[ -n $d ]] || continue
        _ozk_memo_watch+=("$d")
        [[ $1 == load ]] || continue
        for m in "${_ozk_modules[@]}"; do
            part=$d
            while [[ $m == */* ]]; do
                part+=/${m%%/*}
                m=${m#*/}
                [[ -d $part ]] || break
                _ozk_memo_watch+=("$part" "$part/.modulerc.lua" "$part/.modulerc" "$part/.version")
            done
            [[ -d $part/$m ]] && _ozk_memo_watch+=("$part/$m")
        done
    done
    for n in "${_ozk_memo_watch[@]}"; do
        [[ -n $n && -z ${seen["/$n"]-} ]] || continue
        seen["/$n"]=1
        if [[ -e $n ]]; then
            # Changed while being recorded (or a clock ahead): the memo would never apply.
            if [[ ! $n -ot $_ozk_memo_t0 ]]; then
                rm -f -- "$_ozk_memo_t0"
                return 0
            fi
            mw+=("$n")
        elif [[ ! -L $n ]]; then
            ma+=("$n")
        fi
    done
    # shellcheck disable=SC2034 # written through _ozk_memo_write's nameref
    out=("ozkernels-launch-memo $_ozk_memo_version" "${#_ozk_memo_id[@]}" "${_ozk_memo_id[@]}"
        $((${#written[@]} / 3)) "${written[@]}" $((${#inputs[@]} / 2)) "${inputs[@]}"
        "$_ozk_memo_cfg" "${#mw[@]}" "${mw[@]}" "${#ma[@]}" "${ma[@]}" "$_ozk_memo_err" end)
    _ozk_memo_write "$tmp" "$_ozk_memo_f" out
    return 0
}

_ozk_vars_begin() {
    _ozk_memo_errf="" _ozk_memo_t0=""
    _ozk_memo_dir || return 0
    _ozk_memo_t0="$_ozk_memo.$$.t0"
    _ozk_memo_errf="$_ozk_memo.$$.err"
    if ! : 2>/dev/null >"$_ozk_memo_t0" || ! : 2>/dev/null >"$_ozk_memo_errf"; then
        rm -f -- "$_ozk_memo_t0" "$_ozk_memo_errf"
        _ozk_memo_errf="" _ozk_memo_t0=""
    fi
}

_ozk_vars_end() {
    [[ -n $_ozk_memo_t0 ]] || return 0
    local v err tmp="$_ozk_memo.$$.tmp" d=$_ozk_prefix/etc/conda/env_vars.d
    local -a mw=() ma=() out=()
    err=$(<"$_ozk_memo_errf")
    rm -f -- "$_ozk_memo_errf"
    [[ -z $err ]] || printf '%s\n' "$err" >&2
    for v in "$0" "${_ozk_self%/*}/$_ozk_env_vars_py" "$_ozk_python" "$_ozk_prefix/conda-meta/state" "$d" "$d"/*; do
        if [[ -e $v ]]; then
            if [[ ! $v -ot $_ozk_memo_t0 ]]; then
                rm -f -- "$_ozk_memo_t0"
                return 0
            fi
            mw+=("$v")
        elif [[ ! -L $v && $v != "$d/*" ]]; then
            ma+=("$v")
        fi
    done
    # shellcheck disable=SC2034 # written through _ozk_memo_write's nameref
    out=("ozkernels-conda-vars-memo $_ozk_memo_version" "$0" "$_ozk_python" "$_ozk_prefix"
        "$_ozk_code" "$err" "${#mw[@]}" "${mw[@]}" "${#ma[@]}" "${ma[@]}" end)
    _ozk_memo_write "$tmp" "$_ozk_memo.vars" out
}

# Create the memo dir (private) if needed; 1 when there is no usable one.
_ozk_memo_dir() {
    local dir=${_ozk_memo%/*}
    [[ -n $_ozk_memo ]] || return 1
    if [[ ! -d $dir ]]; then
        mkdir -p -- "${dir%/*}" 2>/dev/null && mkdir -m 700 -- "$dir" 2>/dev/null
    fi
    [[ -d $dir && -O $dir && -w $dir ]]
}

# Write the fields of the array named $3 to a memo atomically, its mtime the recording's start.
_ozk_memo_write() {
    local tmp=$1 dest=$2
    local -n fields=$3
    if printf '%s\0' "${fields[@]}" 2>/dev/null >"$tmp" &&
        touch -r "$_ozk_memo_t0" -- "$tmp" 2>/dev/null; then
        mv -f -- "$tmp" "$dest" 2>/dev/null || rm -f -- "$tmp"
    else
        rm -f -- "$tmp"
    fi
    rm -f -- "$_ozk_memo_t0"
    _ozk_memo_prune
}

# The variables the files $@ (modulefiles, Lmod hooks; Lua when named *.lua, else Tcl) read
# by a literal name, appended to _ozk_memo_reads; 1 when one reads a variable by a computed
# name, runs a command or other code (what that reads is unknown), or cannot be read whole.
# Lua comment lines are skipped; anything else that looks like a read counts (at worst a
# needless key, or no memo).
_ozk_memo_scan() {
    # C: every byte is a character, so no byte that is not UTF-8 stops a match.
    local f text line rest tok nm='[A-Za-z_][A-Za-z0-9_]*' nl=$'\n' LC_ALL=C
    local -a lines
    local lua_tok="(^|[^A-Za-z0-9_])(getenv|capture|subprocess|execute|popen|dofile|loadfile|require)([^A-Za-z0-9_].*|$)"
    local lua_arg="^[[:space:]]*(\\([[:space:]]*(\"($nm)\"|'($nm)')[[:space:]]*\\)|\"($nm)\"|'($nm)')"
    local tcl_tok="(^|[^A-Za-z0-9_])(env|getenv|global|exec|system)([^A-Za-z0-9_].*|$)"
    local tcl_getenv="^[[:space:]]+(--return-value[[:space:]]+)?(\\{($nm)\\}|\"($nm)\"|($nm))([];[:space:]]|$)"
    local tcl_source="(^|[[;{$nl])[[:space:]]*source[[:space:]]"
    for f in "$@"; do
        [[ -n $f && -e $f ]] || continue
        [[ -f $f && -r $f ]] || return 1
        # read stops at a NUL byte (and then succeeds): a file with one is not read whole.
        ! IFS= read -r -d '' text <"$f" || return 1
        if [[ $f == *.lua ]]; then
            [[ $text =~ $lua_tok ]] || continue
            mapfile -t lines <"$f"
            text=""
            # No =~ nor ${x%%pattern} per line: 10 us a line each (bash compiles a regex at
            # every =~, and tries the pattern at every position).
            for line in "${lines[@]}"; do
                rest=$line
                while [[ $rest == [[:space:]]* ]]; do rest=${rest:1}; done
                [[ $rest == --* ]] || text+=$line$nl
            done
            rest=$text
            while [[ $rest =~ $lua_tok ]]; do
                tok=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
                [[ $tok == getenv || $tok == require ]] && [[ $rest =~ $lua_arg ]] || return 1
                # require of a named Lua module (SitePackage.lua's "strict") is library code.
                [[ $tok == require ]] ||
                    _ozk_memo_reads+=("${BASH_REMATCH[3]}${BASH_REMATCH[4]}${BASH_REMATCH[5]}${BASH_REMATCH[6]}")
            done
        else
            [[ ! $text =~ $tcl_source ]] || return 1
            rest=$text
            while [[ $rest =~ $tcl_tok ]]; do
                tok=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
                case $tok in
                    env)
                        [[ $rest =~ ^\(($nm)\) ]] || return 1
                        _ozk_memo_reads+=("${BASH_REMATCH[1]}")
                        ;;
                    getenv)
                        [[ $rest =~ $tcl_getenv ]] || return 1
                        _ozk_memo_reads+=("${BASH_REMATCH[3]}${BASH_REMATCH[4]}${BASH_REMATCH[5]}")
                        ;;
                    # `global env` only makes env(X) visible in a proc: skip the names it lists.
                    global) [[ $rest =~ ^([[:blank:]]+[A-Za-z0-9_:]+)+ ]] && rest=${rest:${#BASH_REMATCH[0]}} ;;
                    *) return 1 ;;
                esac
            done
        fi
    done
    return 0
}

# Memos not read nor written for OZKERNELS_LAUNCH_CACHE_DAYS days (default 30; 0: kept) go:
# those of removed kernel dirs, of nodes a Slurm kernel no longer runs on.  At most once a
# day (the time of the last run is in a stamp file), after a memo was written, with one find
# that removes only files named as memos and their temporary files are.
_ozk_memo_prune() {
    local dir=${_ozk_memo%/*} days=${OZKERNELS_LAUNCH_CACHE_DAYS:-30} now last=""
    [[ $days != *[!0-9]* && ${#days} -lt 6 ]] || days=30
    ((days > 0)) || return 0
    printf -v now '%(%s)T' -1
    { IFS= read -r last <"$dir/.prune-stamp"; } 2>/dev/null
    if [[ -n $last && $last != *[!0-9]* && ${#last} -lt 12 ]] && ((last <= now && now - last < 86400)); then
        return 0
    fi
    printf '%s\n' "$now" 2>/dev/null >"$dir/.prune-stamp" || return 0
    find "$dir" -mindepth 1 -maxdepth 1 -type f \( -name '*@*.purge' -o -name '*@*.load' -o \
        -name '*@*.vars' -o -name '*@*.[0-9]*.t0' -o -name '*@*.[0-9]*.tmp' -o \
        -name '*@*.[0-9]*.err' \) -mmin +$((days * 1440)) -amin +$((days * 1440)) -delete \
        </dev/null >/dev/null 2>&1
    return 0
}
