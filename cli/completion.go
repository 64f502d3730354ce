package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// commandTree is every command and its subcommands, for the usage and the
// completion scripts.
func commandTree() map[string][]string {
	return map[string][]string{
		"serve":        nil,
		"credential":   {"create", "list", "get", "update", "enable", "disable", "delete"},
		"connection":   {"create", "list", "get", "update", "rotate-webhook-secret", "delete"},
		"number":       {"create", "list", "get", "update", "delete"},
		"registration": {"list", "delete"},
		"token":        {"create", "revoke"},
		"ban":          {"list", "delete"},
		"call":         {"list", "hangup"},
		"apikey":       {"create", "list", "delete"},
		"log-level":    {"debug", "info", "warn", "error"},
		"check-config": nil,
		"backup":       nil,
		"restore":      nil,
		"cluster":      {"migrate"},
		"export":       nil,
		"import":       nil,
		"completion":   {"bash", "zsh"},
		"version":      nil,
		"help":         nil,
	}
}

const commonFlags = "--api --api-key --data-dir --output -o -h"

// runCompletion prints a completion script: `source <(sipwarden completion
// bash)`, or for zsh `source <(sipwarden completion zsh)`.
func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprint(stderr, "usage: sipwarden completion bash|zsh\n\nPrints a shell completion script. bash: add 'source <(sipwarden completion bash)'\nto ~/.bashrc. zsh: add 'source <(sipwarden completion zsh)' to ~/.zshrc (after compinit).\n")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	tree := commandTree()
	cmds := slices.Sorted(func(yield func(string) bool) {
		for k := range tree {
			if !yield(k) {
				return
			}
		}
	})
	// bash keeps the candidates in $words; zsh in $subs ($words is its
	// own array of the command line).
	variable, script := "words", bashCompletion
	if args[0] == "zsh" {
		variable, script = "subs", zshCompletion
	}
	var cases strings.Builder
	for _, c := range cmds {
		if subs := tree[c]; len(subs) > 0 {
			fmt.Fprintf(&cases, "    %s) %s=%q ;;\n", c, variable, strings.Join(subs, " "))
		}
	}
	fmt.Fprintf(stdout, script, strings.Join(cmds, " "), cases.String(), commonFlags)
	return exitOK
}

const bashCompletion = `# bash completion for sipwarden (sipwarden completion bash)
_sipwarden() {
  local cur=${COMP_WORDS[COMP_CWORD]} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="%s"
  elif [ "$COMP_CWORD" -eq 2 ]; then
    case ${COMP_WORDS[1]} in
%s    check-config|backup|restore|import|export) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
  fi
  case $cur in
    -*) words="%s" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _sipwarden sipwarden
`

const zshCompletion = `#compdef sipwarden
# zsh completion for sipwarden (sipwarden completion zsh)
_sipwarden() {
  local -a words_
  if (( CURRENT == 2 )); then
    words_=(%s)
  elif (( CURRENT == 3 )); then
    local subs=""
    case ${words[2]} in
%s    check-config|backup|restore|import|export) _files; return ;;
    esac
    words_=(${=subs})
  fi
  if [[ ${words[CURRENT]} == -* ]]; then
    words_=(%s)
  fi
  (( ${#words_} )) && compadd -- $words_ || _files
}
if (( $+functions[compdef] )); then
  compdef _sipwarden sipwarden
fi
`
