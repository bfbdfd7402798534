import { hostname } from 'node:os';
import { loadConfig, streamName } from '../../functions/lib/config';
import { ConfigError } from '../../functions/lib/errors';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      streamPrefix: '',
      kinesisEndpoint: undefined,
      confidenceThreshold: 0.7,
      testCameraPrefix: 'Test',
      deviceId: hostname(),
      metricsWindowSeconds: 10,
      parallelism: 1,
      camera: 'Camera',
      delay: 0,
      repeat: 1,
      source: 'mnist',
      logLevel: 'INFO',
      maxFutureSkewSeconds: 300,
      maxImagePixels: 16_777_216,
      writeMaxAttempts: 5,
      isLocal: false,
    });
  });

  it('reads and converts set values, treating empty strings as unset', () => {
    const config = loadConfig({
      STREAM_PREFIX: 'edge-camera-classifier-dev-',
      KINESIS_ENDPOINT: 'http://127.0.0.1:4567',
      CONFIDENCE_THRESHOLD: '0.9',
      TEST_CAMERA_PREFIX: '',
      DEVICE_ID: 'pi-7',
      PARALLELISM: '4',
      MAX_FUTURE_SKEW_SECONDS: '',
      LOG_LEVEL: 'debug',
      IS_LOCAL: 'true',
    });
    expect(config).toMatchObject({
      streamPrefix: 'edge-camera-classifier-dev-',
      kinesisEndpoint: 'http://127.0.0.1:4567',
      confidenceThreshold: 0.9,
      testCameraPrefix: '',
      deviceId: 'pi-7',
      parallelism: 4,
      maxFutureSkewSeconds: 300,
      logLevel: 'DEBUG',
      isLocal: true,
    });
  });

  it.each([
    ['CONFIDENCE_THRESHOLD', '1.5'],
    ['CONFIDENCE_THRESHOLD', 'high'],
    ['PARALLELISM', '0'],
    ['PARALLELISM', '2.5'],
    ['METRICS_WINDOW_SECONDS', '901'],
    ['KINESIS_ENDPOINT', 'localhost 4567'],
    ['STREAM_PREFIX', 'bad/prefix'],
    ['LOG_LEVEL', 'LOUD'],
    ['MAX_IMAGE_PIXELS', '-1'],
    ['IS_LOCAL', 'yes please'],
  ])('rejects %s=%s with a ConfigError naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it('names the stream with the prefix', () => {
    expect(streamName('uncertainImages', '')).toBe('uncertain-images');
    expect(streamName('predictions', 'edge-camera-classifier-dev-')).toBe('edge-camera-classifier-dev-predictions');
  });
});
