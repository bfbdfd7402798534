/**
 * `npm run promote`: rolls model versions out to the edge through the registry.
 *
 *   npm run promote -- --list               versions, their state and gate summary
 *   npm run promote -- 1.1.0                make 1.1.0 current (gates and files checked)
 *   npm run promote -- --rollback           back to the version current before
 *   npm run promote -- 1.1.0 --shadow       score every frame with 1.1.0 too, outputs unchanged
 *   npm run promote -- --no-shadow          stop shadow scoring
 *
 * A running `npm start` switches at its next batch; on AWS, `npm run deploy` publishes the
 * current version as a new model layer version. `--root DIR` (or MODEL_ROOT) picks another
 * models folder.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  DEFAULT_MODELS_ROOT,
  listModels,
  type ModelEntry,
  ModelRegistryError,
  promote,
  type RegistryChange,
  rollback,
  shadow,
} from './model-registry';

const USAGE = [
  'usage: npm run promote -- <version> [--shadow]   make a version current (or run it in shadow)',
  '       npm run promote -- --rollback             return to the previous version',
  '       npm run promote -- --no-shadow            stop shadow scoring',
  '       npm run promote -- --list [--json]        versions, state and gates',
  '       --root DIR                                models folder (default models/, or MODEL_ROOT)',
].join('\n');

function percent(value: unknown): string {
  return typeof value === 'number' ? `${(value * 100).toFixed(2)}%` : '-';
}

/** One line per version: state, gates, the figures a person decides on. */
export function describeModels(entries: readonly ModelEntry[]): string {
  const rows = entries.map((e) => {
    const evaluation = (e.card as Record<string, unknown> | undefined)?.evaluation as
      | {
          mnist?: { accuracy?: unknown };
          test_set?: { accuracy?: unknown };
          held_out?: { accuracy?: unknown; parent_accuracy?: unknown };
        }
      | undefined;
    const gates = e.card?.gates;
    const gateText = e.problem
      ? `unusable: ${e.problem}`
      : gates
        ? gates.passed
          ? `gates passed (${gates.checks.length})`
          : `gates FAILED: ${gates.checks
              .filter((c) => !c.passed)
              .map((c) => c.name)
              .join(', ')}`
        : e.dir === entries[0]?.dir
          ? 'shipped'
          : 'no gate results';
    // A candidate's card (npm run retrain) or the shipped card (npm run train, test_set).
    const mnist = evaluation?.mnist?.accuracy ?? evaluation?.test_set?.accuracy;
    const heldOut = evaluation?.held_out
      ? `  held-out ${percent(evaluation.held_out.accuracy)} (parent ${percent(evaluation.held_out.parent_accuracy)})`
      : '';
    const figures = evaluation ? `mnist ${percent(mnist)}${heldOut}` : '';
    const parent = e.card?.parent?.version ? `from ${e.card.parent.version}` : '';
    return [e.version, e.state, gateText, parent, figures];
  });
  const widths = [7, 9, 0, 0, 0].map((min, i) => Math.max(min, ...rows.map((r) => (r[i] ?? '').length)));
  const header = ['version', 'state', 'gates', 'parent', 'evaluation'];
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] ?? 0) : c))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function describeChange(change: RegistryChange): string {
  switch (change.action) {
    case 'promote':
      return `promoted ${change.version} (was ${change.from}); a running edge switches at its next batch`;
    case 'rollback':
      return `rolled back to ${change.version} (was ${change.from}); a running edge switches at its next batch`;
    case 'shadow':
      return `${change.version} runs in shadow${change.from ? ` (instead of ${change.from})` : ''}; outputs stay those of ${change.registry.current}`;
    case 'unshadow':
      return `stopped shadow scoring with ${change.version}`;
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      list: { type: 'boolean' },
      json: { type: 'boolean' },
      rollback: { type: 'boolean' },
      shadow: { type: 'boolean' },
      'no-shadow': { type: 'boolean' },
      root: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  const root = resolve(values.root ?? process.env.MODEL_ROOT ?? DEFAULT_MODELS_ROOT);
  const version = positionals[0];
  const modes = [values.list, values.rollback, values['no-shadow'], version !== undefined].filter(Boolean).length;
  if (values.help || modes !== 1 || positionals.length > 1 || (values.shadow && version === undefined)) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  if (values.list) {
    const entries = listModels(root);
    console.log(values.json ? JSON.stringify(entries, null, 2) : describeModels(entries));
    return 0;
  }
  const change = values.rollback
    ? await rollback(root)
    : values['no-shadow']
      ? await shadow(null, root)
      : values.shadow
        ? await shadow(version as string, root)
        : await promote(version as string, root);
  console.log(describeChange(change));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof ModelRegistryError) {
        console.error(`${error.message}\nnothing changed: the current model keeps serving`);
      } else if (error instanceof TypeError && /Unknown option|argument/.test(error.message)) {
        console.error(`${error.message}\n\n${USAGE}`);
        process.exitCode = 2;
        return;
      } else {
        console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
      }
      process.exitCode = 1;
    },
  );
}
