# bash completion for secretctl(1).  Install as
# /usr/share/bash-completion/completions/secretctl.
#
# Secret names are not completed: that would ask the broker (and write an
# audit record) on every <Tab>.

_secretctl() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="get put list rm whoami inject watch exec ping status help"
	local i cmd=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-s | --socket) ((i++)) ;;
		--socket=*) ;;
		-*) ;;
		*)
			cmd=${words[i]}
			break
			;;
		esac
	done

	if [[ -z $cmd ]]; then
		case $prev in
		-s | --socket)
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			return
			;;
		esac
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "-s --socket --help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
		fi
		return
	fi

	local opts=""
	case $cmd in
	get)
		case $prev in
		-o) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
		--version) return ;;
		esac
		opts="-o --version --help"
		;;
	put)
		case $prev in
		--from-file) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
		--generate) return ;;
		--charset) mapfile -t COMPREPLY < <(compgen -W "alnum base64 hex" -- "$cur"); return ;;
		esac
		opts="--from-file --generate --charset --help"
		;;
	inject)
		case $prev in
		--dir) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
		--owner) return ;; # numeric UID:GID; ":" is a word break for bash
		--mode) mapfile -t COMPREPLY < <(compgen -W "0400 0440 0444 0600 0640" -- "$cur"); return ;;
		--on-change) mapfile -t COMPREPLY < <(compgen -c -- "$cur"); return ;;
		--signal) mapfile -t COMPREPLY < <(compgen -W "HUP USR1 USR2 TERM INT QUIT WINCH" -- "$cur"); return ;;
		--pid-file) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
		esac
		opts="--dir --owner --mode --allow-disk --watch --on-change --signal --pid-file --help"
		;;
	exec)
		# After "--" the words are CMD and its arguments: complete commands, then files.
		for ((i = 1; i < cword; i++)); do
			if [[ ${words[i]} == -- ]]; then
				if ((cword == i + 1)); then
					mapfile -t COMPREPLY < <(compgen -c -- "$cur")
				else
					mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				fi
				return
			fi
		done
		case $prev in
		--dir) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
		--env | --owner) return ;;
		--mode) mapfile -t COMPREPLY < <(compgen -W "0400 0440 0444 0600 0640" -- "$cur"); return ;;
		--signal) mapfile -t COMPREPLY < <(compgen -W "HUP USR1 USR2 TERM INT QUIT WINCH" -- "$cur"); return ;;
		esac
		opts="--env --dir --owner --mode --allow-disk --watch --restart --signal -- --help"
		;;
	watch) opts="--help" ;;
	list | rm | whoami | ping | status) opts="--help" ;;
	*) return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	fi
} &&
	complete -F _secretctl secretctl
