"""The shell side of :mod:`netlens.shellcomp`: the functions that read its data.

Both shells walk the words typed so far the same way: skip options (and the
value of an option that takes one), descend into subcommands, count
positionals, and stop at a command line (``run -- CMD``, ``exec NAME -- CMD``).
Then they offer flags, subcommands, or the values of one slot: names read from
the state directory with a glob (no process is started), files, or fixed words.

bash splits words at ``=`` and ``:`` (COMP_WORDBREAKS, which a completion must
not change): ``--network=lan`` and ``status=running`` arrive in pieces, so the
bash function joins them back before walking and strips the joined prefix from
its answers again (bash replaces only its own last piece).
"""

from __future__ import annotations

BASH_HEAD = r"""
# bash completion for netlens, made by `netlens completion bash` (regenerate, do not edit).
# Load it with:  eval "$(netlens completion bash)"   (e.g. in ~/.bashrc)
# or install it: netlens completion bash > /etc/bash_completion.d/netlens
"""

BASH_BODY = r"""
_netlens_state() { # $1: containers, networks or labs (one JSON file per name), $2: prefix
    [[ $2 == */* ]] && return 0
    local -a fs=("${NETLENS_STATE_DIR:-/run/netlens}/$1/$2"*.json)
    [[ -e ${fs[0]} ]] || return 0 # nothing matched: the pattern itself, or none (nullglob)
    fs=("${fs[@]##*/}")
    _nl_cands+=("${fs[@]%.json}")
}

_netlens_nodes() { # $1: the lab typed before, $2: prefix: its nodes, by their containers' files
    [[ -z $1 || $1 == */* || $2 == */* ]] && return 0
    local -a fs=("${NETLENS_STATE_DIR:-/run/netlens}/containers/$1-$2"*.json)
    [[ -e ${fs[0]} ]] || return 0
    fs=("${fs[@]##*/}")
    fs=("${fs[@]%.json}")
    _nl_cands+=("${fs[@]#"$1-"}")
}

_netlens_filters() { # ps --filter KEY=VALUE
    local -a names=()
    case $1 in
    status=*) names=(created restarting running removing paused exited dead) ;;
    network=*) _nl_cands=() && _netlens_state networks "${1#*=}" && names=("${_nl_cands[@]}") ;;
    name=*) _nl_cands=() && _netlens_state containers "${1#*=}" && names=("${_nl_cands[@]}") ;;
    *)
        _nl_cands=(label= name= network= status=)
        return
        ;;
    esac
    _nl_cands=("${names[@]/#/${1%%=*}=}")
}

_netlens_values() { # $1: slot ("netlens_rm:@1", "netlens_run:--network"), $2: typed
    local kind f
    for kind in ${_netlens_kind[$1]}; do
        case $kind in
        containers | networks | labs) _netlens_state "$kind" "$2" ;;
        nodes) _netlens_nodes "$p1" "$2" ;;
        netns)
            _nl_cands+=(host)
            for f in /run/netns/*; do [[ -e $f ]] && _nl_cands+=("${f##*/}"); done
            ;;
        themes)
            for f in "${XDG_CONFIG_HOME:-$HOME/.config}/netlens/themes/"*.toml; do
                [[ -e $f ]] || continue
                f=${f##*/}
                _nl_cands+=("${f%.toml}")
            done
            _nl_files=toml
            ;;
        files | dirs | yaml | json | commands) _nl_files=$kind ;;
        filters) _netlens_filters "$2" ;;
        esac
    done
    _nl_cands+=(${_netlens_words[$1]})
}

_netlens() {
    local IFS=$' \t\n'
    local -a ws=() _nl_cands=() found=()
    local _nl_files="" bcur=${COMP_WORDS[COMP_CWORD]} w j glue=0
    local typed=${COMP_LINE:0:COMP_POINT}
    for ((j = 1; j <= COMP_CWORD; j++)); do
        w=${COMP_WORDS[j]}
        if [[ $w =~ ^[=:]+$ ]] && ((${#ws[@]})); then
            ws[-1]+=$w
            glue=1
        elif ((glue)) && { ((j < COMP_CWORD)) || [[ $typed != *[[:space:]] ]]; }; then
            ws[-1]+=$w
            glue=0
        else
            ws+=("$w")
            glue=0
        fi
    done
    local whole=${ws[-1]} key=netlens opt="" slot="" pre="" npos=0 inrest=0 nrest=0 p1=""
    local cur=$whole n=$((${#ws[@]} - 1))
    for ((j = 0; j < n; j++)); do
        w=${ws[j]}
        if ((inrest)); then
            nrest=$((nrest + 1))
            continue
        fi
        if [[ -n $opt ]]; then
            opt=""
            continue
        fi
        case $w in
        --)
            [[ ${_netlens_kind[$key:@$((npos + 1))]} == commands ]] && inrest=1
            continue
            ;;
        -*=*) continue ;;
        -*)
            [[ " ${_netlens_vopts[$key]} " == *" $w "* ]] && opt=$w
            continue
            ;;
        esac
        if ((npos == 0)) && [[ " ${_netlens_subs[$key]} " == *" $w "* ]]; then
            key+=_$w
            continue
        fi
        npos=$((npos + 1))
        ((npos == 1)) && p1=$w # the lab whose nodes come next (lab stop LAB NODE...)
        if [[ ${_netlens_kind[$key:@$npos]} == commands ]]; then
            inrest=1
            nrest=1
        fi
    done
    if ((inrest)); then
        if ((nrest == 0)); then _nl_files=commands; else _nl_files=files; fi
    elif [[ -n $opt ]]; then
        slot=$key:$opt
    elif [[ $cur == --*=* ]]; then
        opt=${cur%%=*}
        pre=$opt=
        cur=${cur#*=}
        [[ " ${_netlens_vopts[$key]} " == *" $opt "* ]] && slot=$key:$opt
    elif [[ $cur == -* ]]; then
        _nl_cands=(${_netlens_opts[$key]})
    elif ((npos == 0)) && [[ -n ${_netlens_subs[$key]} ]]; then
        _nl_cands=(${_netlens_subs[$key]})
    elif ((npos + 1 > ${_netlens_npos[$key]:-0})); then
        slot=$key:@n
    else
        slot=$key:@$((npos + 1))
    fi
    [[ -n $slot ]] && _netlens_values "$slot" "$cur"
    for w in "${_nl_cands[@]}"; do
        [[ $w == "$cur"* ]] && found+=("$pre$w")
    done
    local -a files=()
    case $_nl_files in
    commands) mapfile -t files < <(compgen -c -- "$cur") ;;
    files) mapfile -t files < <(compgen -f -- "$cur") ;;
    dirs) mapfile -t files < <(compgen -d -- "$cur") ;;
    yaml | json | toml)
        mapfile -t files < <(compgen -d -- "$cur"
            compgen -f -X "!*.$_nl_files" -- "$cur"
            [[ $_nl_files == yaml ]] && compgen -f -X '!*.yml' -- "$cur")
        ;;
    esac
    if [[ -n $_nl_files ]]; then
        compopt -o filenames 2>/dev/null
        found+=("${files[@]/#/$pre}")
    fi
    # bash replaces only its last piece of the word: drop what precedes it.
    local cut=${whole%"$bcur"}
    COMPREPLY=("${found[@]#"$cut"}")
    if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -F _netlens netlens
"""

ZSH_HEAD = r"""
#compdef netlens
# zsh completion for netlens, made by `netlens completion zsh` (regenerate, do not edit).
# Load it after compinit with:  source <(netlens completion zsh)   (e.g. in ~/.zshrc)
# or install it in your fpath:  netlens completion zsh > "${fpath[1]}/_netlens"
"""

ZSH_BODY = r"""
_netlens_state() { # $1: containers, networks or labs (one JSON file per name), $2: prefix
    [[ $2 == */* ]] && return 0
    local -a fs
    fs=(${NETLENS_STATE_DIR:-/run/netlens}/$1/$2*.json(N:t:r))
    cands+=($fs)
}

_netlens_nodes() { # $1: the lab typed before, $2: prefix: its nodes, by their containers' files
    [[ -z $1 || $1 == */* || $2 == */* ]] && return 0
    local -a fs
    fs=(${NETLENS_STATE_DIR:-/run/netlens}/containers/$1-$2*.json(N:t:r))
    cands+=(${fs#$1-})
}

_netlens_filters() { # ps --filter KEY=VALUE
    local key=${1%%=*}
    local -a names
    case $1 in
    (status=*) names=(created restarting running removing paused exited dead) ;;
    (network=*) cands=(); _netlens_state networks ${1#*=}; names=($cands) ;;
    (name=*) cands=(); _netlens_state containers ${1#*=}; names=($cands) ;;
    (*) cands=(label= name= network= status=); return ;;
    esac
    cands=(${names/#/$key=})
}

_netlens_values() { # $1: slot ("netlens_rm:@1", "netlens_run:--network"), $2: typed
    local kind f
    for kind in ${=_netlens_kind[$1]}; do
        case $kind in
        (containers|networks|labs) _netlens_state $kind $2 ;;
        (nodes) _netlens_nodes $p1 $2 ;;
        (netns)
            cands+=(host)
            for f in /run/netns/*(N); do cands+=(${f:t}); done ;;
        (themes)
            for f in ${XDG_CONFIG_HOME:-$HOME/.config}/netlens/themes/*.toml(N); do
                cands+=(${${f:t}%.toml})
            done
            globs+=('*.toml') ;;
        (files) globs+=('*') ;;
        (dirs) dirs=1 ;;
        (commands) cmds=1 ;;
        (yaml) globs+=('*.(yaml|yml)') ;;
        (json) globs+=('*.json') ;;
        (filters) _netlens_filters $2 ;;
        esac
    done
    cands+=(${=_netlens_words[$1]})
}

_netlens() {
    local key=netlens w opt= slot= cur=${words[CURRENT]} o p1=
    local -i j npos=0 inrest=0 nrest=0 dirs=0 cmds=0 ret=1
    local -a cands globs specs eq plain
    for ((j = 2; j < CURRENT; j++)); do
        w=${words[j]}
        if ((inrest)); then
            nrest+=1
            continue
        fi
        if [[ -n $opt ]]; then
            opt=
            continue
        fi
        case $w in
        (--)
            [[ ${_netlens_kind[$key:@$((npos + 1))]} == commands ]] && inrest=1
            continue ;;
        (-*=*) continue ;;
        (-*)
            [[ " ${_netlens_vopts[$key]} " == *" $w "* ]] && opt=$w
            continue ;;
        esac
        if ((npos == 0)) && [[ " ${_netlens_subs[$key]} " == *" $w "* ]]; then
            key+=_$w
            continue
        fi
        npos+=1
        ((npos == 1)) && p1=$w
        if [[ ${_netlens_kind[$key:@$npos]} == commands ]]; then
            inrest=1
            nrest=1
        fi
    done
    if ((inrest)); then
        if ((nrest == 0)); then _command_names -e; else _files; fi
        return
    elif [[ -n $opt ]]; then
        slot=$key:$opt
    elif [[ $cur == --*=* ]]; then
        opt=${cur%%=*}
        compset -P '*='
        cur=${cur#*=}
        [[ " ${_netlens_vopts[$key]} " == *" $opt "* ]] && slot=$key:$opt
    elif [[ $cur == -* ]]; then
        for o in ${=_netlens_opts[$key]}; do specs+=("$o:${_netlens_help[$key:$o]}"); done
        _describe -t options option specs
        return
    elif ((npos == 0)) && [[ -n ${_netlens_subs[$key]} ]]; then
        for o in ${=_netlens_subs[$key]}; do specs+=("$o:${_netlens_help[${key}_$o]}"); done
        _describe -t commands command specs
        return
    elif ((npos + 1 > ${_netlens_npos[$key]:-0})); then
        slot=$key:@n
    else
        slot=$key:@$((npos + 1))
    fi
    [[ -n $slot ]] || return 1
    _netlens_values $slot $cur
    eq=(${(M)cands:#*=})
    plain=(${cands:#*=})
    ((${#eq})) && compadd -S '' -- $eq && ret=0
    ((${#plain})) && compadd -- $plain && ret=0
    for o in $globs; do _files -g $o && ret=0; done
    ((dirs)) && _files -/ && ret=0
    ((cmds)) && _command_names -e && ret=0
    return ret
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _netlens "$@"
else
    compdef _netlens netlens
fi
"""
