// Shell completion for bash and zsh, written from the commander program itself (its commands,
// options and option choices), so that it cannot drift from --help: `pg_seccomp completion bash`.

import { Argument, Command, Option } from "commander";

/** What completion needs of one command: its path, subcommands, options, and the options that take a value (with their choices). */
export interface CompletionNode {
  path: string;
  subcommands: string[];
  options: string[];
  valued: Array<{ flags: string[]; choices?: readonly string[] }>;
}

export function completionNodes(program: Command): CompletionNode[] {
  const out: CompletionNode[] = [];
  const walk = (cmd: Command, path: string[]) => {
    const visible = (cmd.options as readonly Option[]).filter((o) => !o.hidden);
    const flagsOf = (o: Option) => [o.short, o.long].filter((f): f is string => f !== undefined);
    out.push({
      path: path.join(" "),
      subcommands: cmd.commands.map((c) => c.name()),
      options: [...visible.flatMap(flagsOf), "--help"].sort(),
      valued: visible.filter((o) => o.required || o.optional).map((o) => ({ flags: flagsOf(o), ...(o.argChoices ? { choices: o.argChoices } : {}) })),
    });
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return out;
}

/** Shell words: the names and flags here are [A-Za-z0-9_.-@/] only; anything else is refused, not quoted. */
function words(ws: readonly string[]): string {
  for (const w of ws) if (!/^[A-Za-z0-9_.@/=-]+$/.test(w)) throw new Error(`completion: "${w}" is not a plain word`);
  return ws.join(" ");
}

/** The case arms both shells share: subcommands, options and value-taking options per command path, choices per option. */
function caseArms(nodes: readonly CompletionNode[]): { subs: string; opts: string; valued: string; choices: string } {
  const arm = (key: string, value: string) => `    "${key}") echo "${value}" ;;`;
  return {
    subs: nodes.filter((n) => n.subcommands.length).map((n) => arm(n.path, words(n.subcommands))).join("\n"),
    opts: nodes.map((n) => arm(n.path, words(n.options))).join("\n"),
    valued: nodes.filter((n) => n.valued.length).map((n) => arm(n.path, words(n.valued.flatMap((v) => v.flags)))).join("\n"),
    choices: nodes.flatMap((n) => n.valued.filter((v) => v.choices).flatMap((v) => v.flags.map((f) => arm(`${n.path} ${f}`.trim(), words(v.choices!))))).join("\n"),
  };
}

/** Shell functions that answer "what comes here" from the tables; shared by bash and zsh. */
function tables(name: string, nodes: readonly CompletionNode[]): string {
  const a = caseArms(nodes);
  return `_${name}_subs() {
  case "$1" in
${a.subs}
  esac
}
_${name}_opts() {
  case "$1" in
${a.opts}
  esac
}
_${name}_valued() {
  case "$1" in
${a.valued}
  esac
}
_${name}_choices() {
  case "$1" in
${a.choices}
  esac
}
# The command path of the words before the cursor: subcommand names, skipping options and their values.
_${name}_cmdpath() {
  local cmdpath="" skip="" w
  for w in "$@"; do
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$w" in
      -*=*) ;;
      -*) case " $(_${name}_valued "$cmdpath") " in *" $w "*) skip=1 ;; esac ;;
      *) case " $(_${name}_subs "$cmdpath") " in *" $w "*) cmdpath="\${cmdpath:+$cmdpath }$w" ;; esac ;;
    esac
  done
  echo "$cmdpath"
}
`;
}

export function bashCompletion(program: Command): string {
  const name = program.name();
  return `# bash completion for ${name}, written by \`${name} completion bash\` from its own command definitions.
# Install: ${name} completion bash > /etc/bash_completion.d/${name}  (or source it from ~/.bashrc)
${tables(name, completionNodes(program))}
_${name}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmdpath choices
  cmdpath=$(_${name}_cmdpath "\${COMP_WORDS[@]:1:COMP_CWORD-1}")
  choices=$(_${name}_choices "\${cmdpath:+$cmdpath }$prev")
  if [ -n "$choices" ]; then COMPREPLY=( $(compgen -W "$choices" -- "$cur") ); return; fi
  case " $(_${name}_valued "$cmdpath") " in *" $prev "*) COMPREPLY=(); return ;; esac
  if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "$(_${name}_opts "$cmdpath")" -- "$cur") ); return; fi
  COMPREPLY=( $(compgen -W "$(_${name}_subs "$cmdpath")" -- "$cur") )
}
complete -o default -F _${name} ${name}
`;
}

export function zshCompletion(program: Command): string {
  const name = program.name();
  return `#compdef ${name}
# zsh completion for ${name}, written by \`${name} completion zsh\` from its own command definitions.
# Install: ${name} completion zsh > "\${fpath[1]}/_${name}"  (or source it after compinit)
${tables(name, completionNodes(program))}
_${name}() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}"
  local cmdpath choices
  cmdpath=$(_${name}_cmdpath "\${(@)words[2,CURRENT-1]}")
  choices=$(_${name}_choices "\${cmdpath:+$cmdpath }$prev")
  if [[ -n "$choices" ]]; then compadd -- \${=choices}; return; fi
  case " $(_${name}_valued "$cmdpath") " in *" $prev "*) _files; return ;; esac
  local opts=$(_${name}_opts "$cmdpath")
  if [[ "$cur" == -* ]]; then compadd -- \${=opts}; return; fi
  local subs=$(_${name}_subs "$cmdpath")
  if [[ -n "$subs" ]]; then compadd -- \${=subs}; else _files; fi
}
if [[ "\${funcstack[1]}" == "_${name}" ]]; then _${name} "$@"; else compdef _${name} ${name}; fi
`;
}

/** completion bash|zsh. */
export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script for bash or zsh, written from this program's commands and options")
    .addArgument(new Argument("<shell>", "the shell").choices(["bash", "zsh"]))
    .action((shell: string) => {
      process.stdout.write(shell === "bash" ? bashCompletion(program) : zshCompletion(program));
    });
}
