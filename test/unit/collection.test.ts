import { homeReason, parseCameraRules, policyFor, SampleBudget, sampleDraw } from '../../functions/lib/collection';
import { loadConfig } from '../../functions/lib/config';
import { ConfigError } from '../../functions/lib/errors';

const defaults = { confidenceThreshold: 0.7, testCameraPrefix: 'Test', sampleCertainRate: 0, sampleCapPerMinute: 10 };
const frameIds = (n: number, shard = 'shardId-000000000000') =>
  Array.from(
    { length: n },
    (_, i) => `${shard}-4965958045326204083818351922745271185347423351638931${String(8000 + i * 7).padStart(4, '0')}`,
  );

const certain = (frameId: string, camera = 'Camera-1', timestamp = '2026-12-06T05:00:10.000Z') => ({
  frameId,
  camera,
  timestamp,
  resultProbability: 0.99,
  blank: false,
});

describe('sampleDraw', () => {
  it('is a pure function of the frame id, spread over [0, 1)', () => {
    const ids = frameIds(4000);
    const draws = ids.map(sampleDraw);
    expect(ids.map(sampleDraw)).toEqual(draws);
    expect(draws.every((d) => d >= 0 && d < 1)).toBe(true);
    // A 5% rate over 4,000 neighbouring ids samples close to 200 (binomial sd ~14).
    const sampled = draws.filter((d) => d < 0.05).length;
    expect(sampled).toBeGreaterThan(140);
    expect(sampled).toBeLessThan(260);
  });
});

describe('homeReason with sampling', () => {
  const policy = { ...policyFor('Camera-1', defaults, []), sampleRate: 0.3, sampleCapPerMinute: 1_000 };

  it('samples the same frames on a redelivery, in any order and in a fresh container', () => {
    const ids = frameIds(500);
    const first = new SampleBudget();
    const chosen = ids.filter((id) => homeReason(certain(id), policy, first) === 'sampled');
    expect(chosen.length).toBeGreaterThan(100);
    // Redelivered to the same container, backwards.
    const again = [...ids].reverse().filter((id) => homeReason(certain(id), policy, first) === 'sampled');
    expect(new Set(again)).toEqual(new Set(chosen));
    // Redelivered to a new container.
    const fresh = new SampleBudget();
    expect(ids.filter((id) => homeReason(certain(id), policy, fresh) === 'sampled')).toEqual(chosen);
  });

  it('never samples at rate 0 and never samples what already goes home for another reason', () => {
    const budget = new SampleBudget();
    const off = { ...policy, sampleRate: 0 };
    expect(frameIds(200).some((id) => homeReason(certain(id), off, budget) !== undefined)).toBe(false);
    const all = { ...policy, sampleRate: 1 };
    expect(homeReason({ ...certain('a'), resultProbability: 0.5 }, all, budget)).toBe('low_confidence');
    expect(homeReason({ ...certain('b'), blank: true }, all, budget)).toBe('low_confidence');
    expect(homeReason(certain('c', 'Test-1'), policyFor('Test-1', { ...defaults, sampleCertainRate: 1 }, []), budget)).toBe(
      'test_camera',
    );
  });

  it('caps sampled frames per camera per capture minute, keeping the admitted ones on redelivery', () => {
    const capped = { ...policy, sampleRate: 1, sampleCapPerMinute: 5 };
    const budget = new SampleBudget();
    const ids = frameIds(40);
    const minute1 = ids
      .slice(0, 20)
      .filter((id) => homeReason(certain(id, 'Cam-a', '2026-12-06T05:00:10.000Z'), capped, budget) === 'sampled');
    expect(minute1).toEqual(ids.slice(0, 5));
    // Another camera in the same minute has its own budget; the next minute starts again.
    const otherCamera = ids
      .slice(0, 20)
      .filter((id) => homeReason(certain(id, 'Cam-b', '2026-12-06T05:00:10.000Z'), capped, budget) === 'sampled');
    expect(otherCamera).toHaveLength(5);
    const minute2 = ids
      .slice(20)
      .filter((id) => homeReason(certain(id, 'Cam-a', '2026-12-06T05:01:59.999Z'), capped, budget) === 'sampled');
    expect(minute2).toEqual(ids.slice(20, 25));
    // The whole first minute redelivered: the same five, and only them.
    const redelivered = ids
      .slice(0, 20)
      .filter((id) => homeReason(certain(id, 'Cam-a', '2026-12-06T05:00:10.000Z'), capped, budget) === 'sampled');
    expect(redelivered).toEqual(minute1);
  });
});

describe('camera rules', () => {
  it('apply every matching glob in the order written, over the defaults', () => {
    const rules = parseCameraRules(
      JSON.stringify({
        '*': { sampleRate: 0.01 },
        'Dock-*': { confidence: 0.9, sampleRate: 0.2 },
        'Dock-7': { sampleCapPerMinute: 60 },
        'Test-quiet': { sendAll: false },
        'Lab-?': { sendAll: true },
      }),
    );
    expect(policyFor('Yard-1', defaults, rules)).toEqual({
      confidenceThreshold: 0.7,
      sendAll: false,
      sampleRate: 0.01,
      sampleCapPerMinute: 10,
    });
    expect(policyFor('Dock-3', defaults, rules)).toEqual({
      confidenceThreshold: 0.9,
      sendAll: false,
      sampleRate: 0.2,
      sampleCapPerMinute: 10,
    });
    expect(policyFor('Dock-7', defaults, rules)).toEqual({
      confidenceThreshold: 0.9,
      sendAll: false,
      sampleRate: 0.2,
      sampleCapPerMinute: 60,
    });
    expect(policyFor('Test-loud', defaults, rules).sendAll).toBe(true);
    expect(policyFor('Test-quiet', defaults, rules).sendAll).toBe(false);
    expect(policyFor('Lab-1', defaults, rules).sendAll).toBe(true);
    expect(policyFor('Lab-12', defaults, rules).sendAll).toBe(false);
    // The glob's dots are literal.
    expect(policyFor('Dock-7x', defaults, parseCameraRules('{"Dock-7.x": {"confidence": 0.1}}')).confidenceThreshold).toBe(0.7);
  });

  it('a camera rule threshold decides low_confidence for that camera only', () => {
    const rules = parseCameraRules('{"Strict-*": {"confidence": 0.95}}');
    const frame = { ...certain('x'), resultProbability: 0.9 };
    expect(homeReason({ ...frame, camera: 'Strict-1' }, policyFor('Strict-1', defaults, rules), new SampleBudget())).toBe(
      'low_confidence',
    );
    expect(homeReason(frame, policyFor('Camera-1', defaults, rules), new SampleBudget())).toBeUndefined();
  });

  it.each([
    ['{"Dock-*": {"confidence": 0.9}', /CAMERA_RULES=.*not JSON/],
    ['[1, 2]', /CAMERA_RULES=.*expected \{"<camera glob>"/],
    ['{"Dock-*": {"confidense": 0.9}}', /CAMERA_RULES=.*Dock-\*: Unrecognized key.*confidense/],
    ['{"Dock-*": {"sampleRate": 2}}', /CAMERA_RULES=.*Dock-\*\.sampleRate/],
    ['{"Dock-*": {"sampleCapPerMinute": 0}}', /CAMERA_RULES=.*sampleCapPerMinute/],
    ['{"../etc": {}}', /CAMERA_RULES=.*\.\.\/etc: not a camera-id glob/],
  ])('refuse %s at cold start with a ConfigError naming CAMERA_RULES', (value, message) => {
    expect(() => loadConfig({ CAMERA_RULES: value })).toThrow(ConfigError);
    expect(() => loadConfig({ CAMERA_RULES: value })).toThrow(message);
  });

  it('configuration reads the sampling variables with their defaults and bounds', () => {
    expect(loadConfig({})).toMatchObject({ sampleCertainRate: 0, sampleCapPerMinute: 10, cameraRules: [] });
    const config = loadConfig({
      SAMPLE_CERTAIN_RATE: '0.05',
      SAMPLE_CAP_PER_MINUTE: '30',
      CAMERA_RULES: '{"A-*": {"sendAll": true}}',
    });
    expect(config).toMatchObject({ sampleCertainRate: 0.05, sampleCapPerMinute: 30 });
    expect(config.cameraRules.map((r) => r.pattern)).toEqual(['A-*']);
    expect(() => loadConfig({ SAMPLE_CERTAIN_RATE: '1.5' })).toThrow(/SAMPLE_CERTAIN_RATE/);
    expect(() => loadConfig({ SAMPLE_CAP_PER_MINUTE: '0' })).toThrow(/SAMPLE_CAP_PER_MINUTE/);
  });
});
