/**
 * The child process of the home's retrain button: receives the retrain options over IPC,
 * runs {@link retrain} and reports its progress, then its result or error, as IPC messages.
 *
 * A process of its own because retraining is CPU-bound on the thread that runs it (tfjs
 * kernels, ONNX scoring of the test set) for minutes: in the home's process it would stall
 * every request and event stream. A process also keeps tfjs and its memory out of the home,
 * and can be ended without harm to it. It ends with its parent (IPC disconnect).
 */
import { retrain, type RetrainOptions, type RetrainProgress } from '../training/retrain';

/** Parent -> child. */
export interface RetrainJobRequest {
  type: 'start';
  options: Omit<RetrainOptions, 'onProgress'>;
}

/** Child -> parent. */
export type RetrainJobMessage =
  | { type: 'progress'; progress: RetrainProgress }
  | { type: 'done'; version: string; dir: string; gates: { passed: boolean; checks: Array<{ name: string; passed: boolean }> } }
  | { type: 'failed'; name: string; message: string };

/** Resolves once the message is handed to the channel (so disconnecting after it loses nothing). */
function send(message: RetrainJobMessage): Promise<void> {
  return new Promise((resolveSend) => {
    if (!process.send || !process.connected) return resolveSend();
    process.send(message, undefined, {}, () => resolveSend());
  });
}

async function run(options: RetrainJobRequest['options']): Promise<void> {
  try {
    const result = await retrain({ ...options, onProgress: (progress) => void send({ type: 'progress', progress }) });
    await send({ type: 'done', version: result.version, dir: result.dir, gates: result.gates });
  } catch (error: unknown) {
    await send({
      type: 'failed',
      name: error instanceof Error ? error.name : 'Error',
      message: error instanceof Error ? error.message : String(error),
    });
  }
  process.disconnect?.();
}

if (require.main === module) {
  if (!process.send) {
    console.error('home/retrain-job.ts is started by the home (it talks over IPC): use npm run retrain in a terminal');
    process.exitCode = 2;
  } else {
    process.once('message', (message: RetrainJobRequest) => {
      if (message?.type === 'start') void run(message.options);
    });
    // The home went away: nobody waits for the result.
    process.once('disconnect', () => process.exit(0));
  }
}
