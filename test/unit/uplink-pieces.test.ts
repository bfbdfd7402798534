/**
 * The uplink's pure pieces: retry delays, the bandwidth bucket, which records of a PutRecords
 * batch count as acknowledged, and the settings' validation.
 */
import { backoffDelayMs } from '../../local/uplink/backoff';
import type { BacklogRecord } from '../../local/uplink/backlog';
import { acknowledged } from '../../local/uplink/forwarder';
import { ByteRateLimiter, kbpsToBytesPerSecond } from '../../local/uplink/rate-limiter';
import { parseUplinkSettings, priorityOf } from '../../local/uplink/settings';
import { recordId } from '../../local/uplink/uplink';

describe('backoffDelayMs', () => {
  const settings = { baseMs: 1000, maxMs: 300_000 };

  it('doubles from the base and never passes the cap, however many failures', () => {
    // Act
    const lows = [1, 2, 3, 4, 20, 10_000].map((n) => backoffDelayMs(n, settings, () => 0));
    const highs = [1, 2, 3, 4, 20, 10_000].map((n) => backoffDelayMs(n, settings, () => 1));
    // Assert
    expect(lows).toEqual([500, 1000, 2000, 4000, 150_000, 150_000]);
    expect(highs).toEqual([1000, 2000, 4000, 8000, 300_000, 300_000]);
  });

  it('is 0 before any failure', () => {
    expect(backoffDelayMs(0, settings)).toBe(0);
  });
});

describe('ByteRateLimiter', () => {
  it('starts empty and lets through no more than rate x elapsed', () => {
    // Prepare: 1000 bytes/s, a clock the test moves.
    let now = 0;
    const limiter = new ByteRateLimiter(1000, 1000, () => now);
    // Act + Assert
    expect(limiter.delayMs(500)).toBe(500);
    now = 500;
    expect(limiter.delayMs(500)).toBe(0);
    limiter.take(500);
    expect(limiter.delayMs(1000)).toBe(1000);
    now = 10_000;
    // Saved up while idle: at most the capacity.
    expect(limiter.delayMs(1000)).toBe(0);
    limiter.take(1000);
    expect(limiter.delayMs(1)).toBe(1);
  });

  it('lets a request larger than the capacity go once the bucket is full, then repays the debt', () => {
    let now = 0;
    const limiter = new ByteRateLimiter(100, 100, () => now);
    now = 1000;
    expect(limiter.delayMs(300)).toBe(0);
    limiter.take(300);
    // 200 bytes of debt plus 50 bytes to find.
    expect(limiter.delayMs(50)).toBe(2500);
  });

  it('has no cap at 0 kbit/s and converts kilobits to bytes', () => {
    expect(new ByteRateLimiter(kbpsToBytesPerSecond(0)).delayMs(1e9)).toBe(0);
    expect(kbpsToBytesPerSecond(8)).toBe(1000);
  });
});

describe('acknowledged', () => {
  const record = (seq: number, key: string): BacklogRecord => ({
    seq,
    partitionKey: key,
    data: Buffer.from('x'),
    id: `f${seq}`,
    at: 0,
    bytes: 1 + key.length,
  });

  it('acknowledges every entry the home gave a sequence number', () => {
    const batch = [record(1, 'a'), record(2, 'b')];
    expect(acknowledged(batch, [{ SequenceNumber: '1' }, { SequenceNumber: '2' }])).toEqual({ acked: [1, 2], retried: 0 });
  });

  it('sends a refused entry again with every later entry of its camera, and acknowledges the other cameras', () => {
    // Prepare: camera a's second record is refused; a's third landed but must follow it.
    const batch = [record(1, 'a'), record(2, 'a'), record(3, 'b'), record(4, 'a'), record(5, 'b')];
    const results = [
      { SequenceNumber: '1' },
      { ErrorCode: 'ProvisionedThroughputExceededException' },
      { SequenceNumber: '3' },
      { SequenceNumber: '4' },
      { SequenceNumber: '5' },
    ];
    // Act + Assert
    expect(acknowledged(batch, results)).toEqual({ acked: [1, 3, 5], retried: 2 });
  });

  it('treats a missing result as refused', () => {
    expect(acknowledged([record(1, 'a')], [])).toEqual({ acked: [], retried: 1 });
  });
});

describe('uplink settings', () => {
  it('fills Stream Manager-like defaults', () => {
    const settings = parseUplinkSettings({ endpoint: 'http://127.0.0.1:4568' });
    expect(settings).toMatchObject({
      streamPrefix: '',
      maxBytes: 256 * 1024 * 1024,
      policy: 'reject-new',
      kbps: 0,
      batchSize: 500,
      retryMaxMs: 300_000,
    });
    expect(settings.streams).toEqual(['metrics', 'rejected-images', 'uncertain-images']);
  });

  it.each([
    [{ endpoint: 'ftp://x' }, 'endpoint'],
    [{ endpoint: 'aws', policy: 'drop-newest' }, 'policy'],
    [{ endpoint: 'aws', streamPrefix: 'a/b' }, 'streamPrefix'],
    [{ endpoint: 'aws', kbps: -1 }, 'kbps'],
    [{ endpoint: 'aws', streams: ['camera-images'] }, 'streams'],
  ])('refuses %j naming the field', (input, field) => {
    expect(() => parseUplinkSettings(input as never)).toThrow(field);
  });

  it('ranks metrics first, then rejects, then images, then predictions', () => {
    expect(
      ['predictions', 'uncertain-images', 'metrics', 'rejected-images'].sort((a, b) => priorityOf(a) - priorityOf(b)),
    ).toEqual(['metrics', 'rejected-images', 'uncertain-images', 'predictions']);
  });
});

describe('recordId', () => {
  it('reads frame_id, else a document id, else nothing', () => {
    expect(recordId(Buffer.from('{"frame_id":"s-1","id":"x"}'))).toBe('s-1');
    expect(recordId(Buffer.from('{"id":"doc-1"}'))).toBe('doc-1');
    expect(recordId(Buffer.from('not json'))).toBeUndefined();
    expect(recordId(Buffer.from('[1]'))).toBeUndefined();
  });
});
