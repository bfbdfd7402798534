/**
 * The camera-source handler's invocation event: the original ImageSource's parameters. Every
 * field is optional and falls back to the configuration (CAMERA, DELAY, REPEAT, SOURCE).
 */
import { z } from 'zod';

export const cameraSourceEventSchema = z.strictObject({
  /** Frames to publish; without it the handler publishes `repeat` passes (bounded by its timeout). */
  count: z.number().int().min(0).optional(),
  /** Camera parameter: the id is this + "-" + the host (device) name. */
  camera: z.string().min(1).max(64).optional(),
  /** Seconds between frames. */
  delay: z.number().min(0).max(3600).optional(),
  /** Passes over the source; 0 = forever. */
  repeat: z.number().int().min(0).optional(),
  /** Frames per second at most; 0 = unlimited. */
  rate: z.number().min(0).optional(),
  /** `mnist` or a folder of PNG files readable by the function. */
  source: z.string().min(1).optional(),
});
export type CameraSourceEvent = z.infer<typeof cameraSourceEventSchema>;
