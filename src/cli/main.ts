/**
 * The `sidecarless` command. Each subcommand lives in its own module that exports
 * `register(program)`; this file only lists them.
 *
 * @module
 */
import { Command } from 'commander';

/** A subcommand module. */
export interface CommandModule {
  register(program: Command): void;
}

// One line per subcommand; modules are loaded only when the CLI runs.
const COMMANDS: readonly (() => Promise<CommandModule>)[] = [
  // <commands>
  () => import('./stat.js'),
  () => import('./check.js'),
  () => import('./control.js'),
];

/** Builds the program with every subcommand registered. */
export async function buildProgram(): Promise<Command> {
  const program = new Command('sidecarless')
    .description('an embedded, in-process service mesh for Node.js')
    .showHelpAfterError()
    .exitOverride();
  for (const load of COMMANDS) (await load()).register(program);
  return program;
}

/** Runs the CLI with `argv` (as `process.argv`). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = await buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    if (typeof code === 'number') return code;
    process.stderr.write(`sidecarless: ${(error as Error).message}\n`);
    return 1;
  }
}
