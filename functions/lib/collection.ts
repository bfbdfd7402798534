/**
 * Which frames go home besides the uncertain ones: per-camera rules and deterministic sampling
 * of certain frames.
 *
 * A model that is confidently wrong on a new camera never trips the certainty filter, so a
 * share of certain frames (`SAMPLE_CERTAIN_RATE`) goes home too, with reason `sampled`, for a
 * person to label. Whether a frame is sampled is a pure function of its `frame_id` (a hash),
 * so a redelivered frame is sampled the same way. A cap per camera and per minute of capture
 * time (`SAMPLE_CAP_PER_MINUTE`) keeps a busy camera from flooding the link.
 *
 * Per-camera rules (`CAMERA_RULES`, a JSON object of camera-id glob -> overrides) set the
 * confidence threshold, the Test rule (every frame home) and the sampling of matching cameras.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { UncertainReason } from './contracts';
import { uncertainReason } from './route';

/** What one camera's frames are held to, after the rules are applied. */
export interface CameraPolicy {
  /** Uncertain when `result_probability <= confidenceThreshold`. */
  confidenceThreshold: number;
  /** Every frame goes home (reason `test_camera`), as for the original's `Test*` cameras. */
  sendAll: boolean;
  /** Share of certain frames sent home with reason `sampled` (0 = none). */
  sampleRate: number;
  /** At most this many sampled frames per camera per minute of capture time. */
  sampleCapPerMinute: number;
}

/** The overrides one rule may set; unknown keys are refused so a typo fails loudly. */
export const cameraRuleSchema = z.strictObject({
  confidence: z.number().min(0).max(1).optional(),
  sendAll: z.boolean().optional(),
  sampleRate: z.number().min(0).max(1).optional(),
  sampleCapPerMinute: z.number().int().min(1).max(1_000_000).optional(),
});
export type CameraRuleOverrides = z.infer<typeof cameraRuleSchema>;

/** A glob over camera ids: the id characters plus `*` (any run) and `?` (one character). */
const GLOB_PATTERN = /^[A-Za-z0-9._:@+*?-]{1,128}$/;

export const cameraRulesSchema = z.record(z.string(), cameraRuleSchema).superRefine((rules, ctx) => {
  for (const glob of Object.keys(rules)) {
    if (!GLOB_PATTERN.test(glob)) {
      ctx.addIssue({
        code: 'custom',
        path: [glob],
        message: 'not a camera-id glob (letters, digits, . _ - : @ + and the wildcards * ?)',
      });
    }
  }
});

/** One parsed rule: its glob, compiled, and its overrides. */
export interface CameraRule {
  readonly pattern: string;
  readonly matcher: RegExp;
  readonly overrides: CameraRuleOverrides;
}

/** A `CAMERA_RULES` value that is not valid JSON or not a valid set of rules. */
export class CameraRulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CameraRulesError';
  }
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * Parses `CAMERA_RULES`: a JSON object whose keys are camera-id globs and whose values set
 * any of `confidence`, `sendAll`, `sampleRate`, `sampleCapPerMinute`. Undefined or '' is no
 * rules. Order matters: see {@link policyFor}.
 *
 * @throws CameraRulesError saying what is wrong (JSON syntax, or which key of which rule).
 */
export function parseCameraRules(text: string | undefined): readonly CameraRule[] {
  if (text === undefined || text.trim() === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error: unknown) {
    throw new CameraRulesError(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const parsed = cameraRulesSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const where = issue.path.map(String).join('.');
      return where === '' ? issue.message : `${where}: ${issue.message}`;
    });
    throw new CameraRulesError(
      `expected {"<camera glob>": {confidence?, sendAll?, sampleRate?, sampleCapPerMinute?}}: ${problems.join('; ')}`,
    );
  }
  return Object.freeze(
    Object.entries(parsed.data).map(([pattern, overrides]) =>
      Object.freeze({ pattern, matcher: globToRegExp(pattern), overrides }),
    ),
  );
}

/** The deployment-wide settings that rules override. */
export interface CollectionDefaults {
  confidenceThreshold: number;
  /** Cameras whose id starts with this send every frame home; '' disables the prefix rule. */
  testCameraPrefix: string;
  sampleCertainRate: number;
  sampleCapPerMinute: number;
}

/**
 * The policy for one camera: the defaults, then every rule whose glob matches the id, in the
 * order written, each overriding what it sets. So a general rule (`"*"`) goes first and a
 * specific one (`"Dock-7"`) after it. A rule's `sendAll` wins over the Test prefix either way.
 */
export function policyFor(camera: string, defaults: CollectionDefaults, rules: readonly CameraRule[]): CameraPolicy {
  const policy: CameraPolicy = {
    confidenceThreshold: defaults.confidenceThreshold,
    sendAll: defaults.testCameraPrefix !== '' && camera.startsWith(defaults.testCameraPrefix),
    sampleRate: defaults.sampleCertainRate,
    sampleCapPerMinute: defaults.sampleCapPerMinute,
  };
  for (const rule of rules) {
    if (!rule.matcher.test(camera)) continue;
    const o = rule.overrides;
    if (o.confidence !== undefined) policy.confidenceThreshold = o.confidence;
    if (o.sendAll !== undefined) policy.sendAll = o.sendAll;
    if (o.sampleRate !== undefined) policy.sampleRate = o.sampleRate;
    if (o.sampleCapPerMinute !== undefined) policy.sampleCapPerMinute = o.sampleCapPerMinute;
  }
  return policy;
}

/**
 * A frame's sampling draw in [0, 1): the first 48 bits of sha256(frame_id). The same id gives
 * the same draw in every container and every retry; ids of one shard differ only in their
 * sequence number's last digits, so a cryptographic hash (rather than a short one) keeps the
 * draws of neighbouring frames independent.
 */
export function sampleDraw(frameId: string): number {
  const digest = createHash('sha256').update(frameId, 'utf8').digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** Camera-minutes remembered by a {@link SampleBudget}; past it the oldest is forgotten. */
export const BUDGET_MINUTES_KEPT = 4096;

/**
 * The per-camera, per-minute cap on sampled frames, held by one container.
 *
 * Minutes are the frames' capture minutes, not the clock's: a backlog drained after an outage
 * still yields up to the cap for every minute it covers, spread over the time it spans, rather
 * than the cap's worth of its first frames. A frame admitted once is remembered, so a
 * redelivery to the same container is admitted again without using the budget. A fresh
 * container starts with a fresh budget: replaying a batch in order it admits every frame the
 * first container admitted (and possibly more, when earlier frames of that minute went through
 * another container), so a sampled frame stays sampled; home de-duplicates on `frame_id`. The
 * cap is therefore per container: with N containers on one camera's lane over a minute (a
 * crash and a restart) up to N times the cap can go home, never fewer than the first decided.
 */
export class SampleBudget {
  private readonly admitted = new Map<string, Set<string>>();

  constructor(private readonly minutesKept = BUDGET_MINUTES_KEPT) {}

  /** True when the frame may go home as sampled; counts it if so. */
  admit(camera: string, captureMs: number, frameId: string, capPerMinute: number): boolean {
    const key = `${camera}\n${Math.floor(captureMs / 60_000)}`;
    let ids = this.admitted.get(key);
    if (ids?.has(frameId)) return true;
    if (ids && ids.size >= capPerMinute) return false;
    if (!ids) {
      ids = new Set();
      this.admitted.set(key, ids);
      if (this.admitted.size > this.minutesKept) this.admitted.delete(this.admitted.keys().next().value as string);
    }
    ids.add(frameId);
    return true;
  }
}

/** A scored frame, as the routing decision needs it. */
export interface ScoredFrame {
  frameId: string;
  camera: string;
  /** Capture time (the frame's validated ISO timestamp). */
  timestamp: string;
  resultProbability: number;
  blank: boolean;
}

/**
 * Why a scored frame goes home on `uncertain-images`, or undefined when it does not:
 * `low_confidence` (blank, or probability at or under the camera's threshold), `test_camera`
 * (the camera sends every frame), or `sampled` (a certain frame drawn under the camera's rate,
 * within its cap). The reasons are checked in that order.
 */
export function homeReason(frame: ScoredFrame, policy: CameraPolicy, budget: SampleBudget): UncertainReason | undefined {
  const reason = uncertainReason(frame.camera, frame.resultProbability, frame.blank, {
    confidenceThreshold: policy.confidenceThreshold,
    testCameraPrefix: '',
  });
  if (reason !== undefined) return reason;
  if (policy.sendAll) return 'test_camera';
  if (policy.sampleRate > 0 && sampleDraw(frame.frameId) < policy.sampleRate) {
    const captureMs = Date.parse(frame.timestamp);
    if (budget.admit(frame.camera, Number.isFinite(captureMs) ? captureMs : 0, frame.frameId, policy.sampleCapPerMinute))
      return 'sampled';
  }
  return undefined;
}
