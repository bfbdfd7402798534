import type { Prediction } from '../../functions/lib/contracts';
import {
  buildMetricsDocument,
  type MetricsDocument,
  metricsDocumentSchema,
  WINDOW_NOTE,
} from '../../functions/lib/metrics/document';
import { mergeByWindow, mergeMetrics, MetricsMergeError } from '../../functions/lib/metrics/merge';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { renderMetricsTable } from '../../functions/lib/metrics/table';
import { makePrediction, predictionStream, TEST_CONFIG } from '../helpers/metrics-fixtures';

const WINDOW = { start: '2026-11-27T15:00:00Z', end: '2026-11-27T15:00:10Z' };

function documentOf(
  predictions: Prediction[],
  shard: string,
  window: { start: string; end: string } = WINDOW,
  firstSequence = '1',
): MetricsDocument {
  const acc = new WindowAccumulator(TEST_CONFIG.confidence);
  acc.noteSequence(firstSequence);
  for (const p of predictions) acc.add(p);
  return buildMetricsDocument(acc, {
    window,
    shard,
    terminatedEarly: false,
    config: TEST_CONFIG,
    timestamp: '2026-11-27T15:00:11.000Z',
  });
}

/** The parts of a document that must not depend on how the frames were split into shards. */
function comparable(doc: MetricsDocument) {
  const { id, parts, shard, ...rest } = doc;
  return JSON.parse(
    JSON.stringify(rest, (key, value: unknown) =>
      // mean, std and mean_probability are float sums combined in another order.
      typeof value === 'number' && ['mean', 'std', 'm2', 'mean_probability', 'rate'].includes(key)
        ? Number(value.toPrecision(9))
        : value,
    ),
  ) as unknown;
}

describe('metrics document', () => {
  it('has every field of the original, counts in 10 slots, and validates against its schema', () => {
    const doc = documentOf(predictionStream(1, 500), 'shardId-000000000000');

    expect(metricsDocumentSchema.parse(JSON.parse(JSON.stringify(doc)))).toEqual(doc);
    for (const camera of Object.values(doc.camera_metrics)) {
      expect(camera.certain).toHaveLength(10);
      expect(camera.uncertain).toHaveLength(10);
    }
    expect(Object.keys(doc.latency_metrics.prep).sort()).toEqual(['50', '75', '90', '99', 'max', 'mean', 'min', 'std']);
    expect(doc.config).toEqual(TEST_CONFIG);
    expect(doc.window.note).toBe(WINDOW_NOTE);
    expect(doc.count).toBe(500);
    expect(doc.throughput).toBe(50);
    expect(doc.id).toBe('shardId-000000000000/2026-11-27T15:00:00Z/1');
  });

  it('adds accuracy only for cameras whose frames carry labels', () => {
    const doc = documentOf(
      [
        makePrediction({ camera: 'Test-1', label: 4, result_class: 4 }),
        makePrediction({ camera: 'Test-1', label: 4, result_class: 9 }),
        makePrediction({ camera: 'Camera-2' }),
      ],
      's',
    );

    expect(doc.camera_metrics['Test-1']?.accuracy).toEqual({ correct: 1, labelled: 2, rate: 0.5 });
    expect(doc.camera_metrics['Camera-2']?.accuracy).toBeUndefined();
  });

  it('reports the counts a reader needs: uncertain share, model versions, per-camera mean probability', () => {
    const doc = documentOf(
      [makePrediction({ result_probability: 0.9 }), makePrediction({ result_probability: 0.5, model_version: 'v2' })],
      's',
    );

    expect(doc.uncertain).toBe(1);
    expect(doc.model_versions).toEqual({ 'digits-test': 1, v2: 1 });
    expect(doc.camera_metrics['Camera-edge1']?.mean_probability).toBeCloseTo(0.7, 12);
  });
});

describe('mergeMetrics', () => {
  it('merging two shard halves equals aggregating the whole window', () => {
    // Prepare
    const predictions = predictionStream(21, 8_000);
    const whole = documentOf(predictions, 'all');
    const left = documentOf(predictions.slice(0, 2_500), 'shardId-000000000000');
    const right = documentOf(predictions.slice(2_500), 'shardId-000000000001');

    // Act
    const merged = mergeMetrics([left, right]);

    // Assess: percentiles and counts are identical, not merely close.
    expect(comparable(merged)).toEqual(comparable(whole));
    expect(merged.latency_metrics.prep['99']).toBe(whole.latency_metrics.prep['99']);
    expect(merged.latency_metrics.end_to_end['50']).toBe(whole.latency_metrics.end_to_end['50']);
    expect(merged.shard).toBe('shardId-000000000000,shardId-000000000001');
    expect(merged.parts).toEqual([left.id, right.id].sort());
    expect(merged.throughput).toBe(800);
    expect(metricsDocumentSchema.safeParse(merged).success).toBe(true);
  });

  it('with repeats and rejects, merging the shard documents still equals aggregating the whole window', () => {
    // Prepare: a camera's records stay on one shard (partition key), repeats included.
    const predictions = predictionStream(31, 2_000);
    const repeats = predictions.filter((_, i) => i % 7 === 0);
    const rejects = predictions.slice(0, 40).map((p, i) => ({
      frame_id: `reject-${i}`,
      camera: p.camera,
      reason: i % 3 === 0 ? ('not_png' as const) : ('corrupt_png' as const),
    }));
    const fold = (subset: (camera: string) => boolean, shard: string): MetricsDocument => {
      const acc = new WindowAccumulator(TEST_CONFIG.confidence);
      acc.noteSequence(shard);
      for (const p of [...predictions, ...repeats]) if (subset(p.camera)) acc.add(p);
      for (const r of [...rejects, ...rejects.slice(0, 5)]) if (subset(r.camera)) acc.addReject(r);
      return buildMetricsDocument(acc, {
        window: WINDOW,
        shard,
        terminatedEarly: false,
        config: TEST_CONFIG,
        timestamp: '2026-11-27T15:00:11.000Z',
      });
    };
    const onLeft = (camera: string): boolean => camera === 'Camera-a' || camera === 'Test-c';

    // Act
    const merged = mergeMetrics([fold(onLeft, 'shardId-0'), fold((c) => !onLeft(c), 'shardId-1')]);

    // Assess
    const whole = fold(() => true, 'all');
    expect(comparable(merged)).toEqual(comparable(whole));
    expect(merged.count).toBe(2_000);
    expect(merged.duplicates).toBe(repeats.length + 5);
    expect(merged.rejected.count).toBe(40);
    expect(merged.rejected.reasons).toEqual({ corrupt_png: 26, not_png: 14 });
  });

  it('is associative: merging merged documents gives the same result', () => {
    const predictions = predictionStream(8, 3_000);
    const docs = [0, 1, 2].map((i) =>
      documentOf(predictions.slice(i * 1_000, (i + 1) * 1_000), `shardId-00${i}`, WINDOW, String(i)),
    );

    const flat = mergeMetrics(docs);
    const nested = mergeMetrics([
      mergeMetrics([docs[0] as MetricsDocument, docs[1] as MetricsDocument]),
      docs[2] as MetricsDocument,
    ]);

    expect(comparable(nested)).toEqual(comparable(flat));
    expect(nested.parts).toEqual(flat.parts);
  });

  it('counts a document delivered twice once', () => {
    const doc = documentOf(predictionStream(2, 100), 'shardId-000000000000');
    const other = documentOf(predictionStream(3, 50), 'shardId-000000000001');

    const merged = mergeMetrics([doc, other, structuredClone(doc)]);

    expect(merged.count).toBe(150);
    expect(mergeMetrics([doc, structuredClone(doc)])).toEqual(doc);
  });

  it('refuses documents that overlap without being the same', () => {
    const a = documentOf(predictionStream(2, 10), 'shardId-0');
    const b = documentOf(predictionStream(3, 10), 'shardId-1');
    const c = documentOf(predictionStream(4, 10), 'shardId-2');

    expect(() => mergeMetrics([mergeMetrics([a, b]), mergeMetrics([b, c])])).toThrow(MetricsMergeError);
    expect(() => mergeMetrics([])).toThrow(MetricsMergeError);
  });

  it('spans the windows it merges, with throughput over the whole span', () => {
    const first = documentOf(predictionStream(2, 100), 's', WINDOW);
    const second = documentOf(predictionStream(3, 300), 's', { start: WINDOW.end, end: '2026-11-27T15:00:20Z' }, '500');

    const merged = mergeMetrics([second, first]);

    expect(merged.window.start).toBe(WINDOW.start);
    expect(merged.window.end).toBe('2026-11-27T15:00:20Z');
    expect(merged.throughput).toBe(20);
  });

  it('keeps unreadable-record counts and their examples', () => {
    const acc = new WindowAccumulator(0.7);
    acc.addInvalid('invalid_json', '7', 'Unexpected token');
    const invalidOnly = buildMetricsDocument(acc, {
      window: WINDOW,
      shard: 'shardId-1',
      terminatedEarly: true,
      config: TEST_CONFIG,
    });
    const normal = documentOf(predictionStream(2, 10), 'shardId-0');

    const merged = mergeMetrics([normal, invalidOnly]);

    expect(merged.invalid).toEqual({
      count: 1,
      reasons: { invalid_json: 1 },
      examples: [{ sequence_number: '7', reason: 'invalid_json', error: 'Unexpected token' }],
    });
    expect(merged.terminated_early).toBe(true);
    expect(merged.latency_metrics.prep.min).toBe(normal.latency_metrics.prep.min);
  });
});

describe('mergeByWindow', () => {
  it('groups shard documents by window, oldest first', () => {
    const later = { start: WINDOW.end, end: '2026-11-27T15:00:20Z' };
    const docs = [
      documentOf(predictionStream(1, 10), 'shardId-0', later, '900'),
      documentOf(predictionStream(2, 20), 'shardId-0', WINDOW, '1'),
      documentOf(predictionStream(3, 30), 'shardId-1', WINDOW, '2'),
    ];

    const windows = mergeByWindow(docs);

    expect(windows.map((w) => [w.window.start, w.count])).toEqual([
      [WINDOW.start, 50],
      [later.start, 10],
    ]);
  });
});

describe('renderMetricsTable', () => {
  it('shows one row per camera with frames, certain/uncertain and p50/p99 latency, and a total', () => {
    const doc = documentOf(
      [
        makePrediction({ camera: 'Camera-a', result_probability: 0.9 }),
        makePrediction({ camera: 'Camera-a', result_probability: 0.2 }),
        makePrediction({ camera: 'Test-b', label: 7, scored_at: '2026-11-27T15:00:01.500Z' }),
      ],
      'shardId-000000000000',
    );

    const lines = renderMetricsTable(doc).split('\n');

    expect(lines[0]).toBe('window 2026-11-27 15:00:00 - 15:00:10 (10 s, 1 shard(s))');
    expect(lines[1]).toBe('frames 3  0.3/s  uncertain 1 (33.3%)  unreadable 0  model digits-test');
    expect(lines[2]?.split(/\s+/)).toEqual(['camera', 'frames', 'certain', 'uncertain', 'accuracy', 'e2e', 'p50', 'e2e', 'p99']);
    expect(lines[3]?.split(/\s+/)).toEqual(['Camera-a', '2', '1', '1', '-', '50.0ms', '50.0ms']);
    expect(lines[4]?.split(/\s+/)).toEqual(['Test-b', '1', '1', '0', '100.0%', '1.50s', '1.50s']);
    expect(lines[5]?.split(/\s+/)).toEqual(['all', '3', '2', '1', '100.0%', '50.0ms', '1.47s']);
    expect(lines[6]).toMatch(
      /^prep p50 1\.20ms p99 1\.20ms \| predict p50 300µs p99 300µs \| end-to-end p50 50\.0ms p99 1\.47s$/,
    );
  });
});
