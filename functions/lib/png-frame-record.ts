/**
 * The second encoding of a `camera-images` record: the PNG file itself, its camera id,
 * capture time and optional label carried in the PNG's own `tEXt` chunks.
 *
 * Why: the JSON encoding wraps the PNG in base64 inside JSON, which Kinesis then carries as
 * base64 again. For a 460 kB 640x480 frame that is an 816 kB string on the wire that every
 * stage copies, decodes and parses as text. A PNG record is the bytes the decoder needs,
 * 25% smaller, with nothing to parse but three short chunks. It stays a valid PNG (any
 * viewer opens it, `exiftool` shows the fields) and a camera can publish a file as is:
 * `aws kinesis put-record --data fileb://frame.png` once the chunks are in.
 */
import { crc32 } from 'node:zlib';
import { chunksBeforeImageData, PNG_SIGNATURE, pngChunk } from './png';

/** The tEXt keywords a PNG record carries; each at most once. */
export const PNG_RECORD_KEYWORDS = ['camera', 'timestamp', 'label'] as const;
export type PngRecordKeyword = (typeof PNG_RECORD_KEYWORDS)[number];

/** Longest tEXt value read for one of our keywords (a timestamp or id is far shorter). */
const MAX_TEXT_VALUE_BYTES = 1024;

export interface PngRecordFields {
  camera: string;
  timestamp: string;
  label?: number | null;
}

/** True when `data` starts with the PNG signature: the record is a PNG record. */
export function isPngRecord(data: Uint8Array): boolean {
  return data.length >= 8 && PNG_SIGNATURE.equals(data.subarray(0, 8));
}

/** One tEXt chunk: keyword, NUL, Latin-1 text (PNG specification 11.3.4.3). */
function textChunk(keyword: string, value: string): Buffer {
  return pngChunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
}

/**
 * A `camera-images` record in the PNG encoding: `png` with tEXt chunks for camera,
 * timestamp and label inserted right after its IHDR (so a reader finds them without
 * walking the image data). Fields `png` already carries (a frame saved from an earlier
 * record) are replaced, not repeated. Throws when `png` does not start with a signature and
 * an IHDR.
 */
export function encodePngRecord(png: Buffer, fields: PngRecordFields): Buffer {
  const ihdrEnd = 8 + 12 + 13;
  if (!isPngRecord(png) || png.length < ihdrEnd || png.toString('latin1', 12, 16) !== 'IHDR') {
    throw new Error('encodePngRecord: not a PNG starting with an IHDR chunk');
  }
  const chunks = [png.subarray(0, ihdrEnd), textChunk('camera', fields.camera), textChunk('timestamp', fields.timestamp)];
  if (fields.label !== undefined && fields.label !== null) chunks.push(textChunk('label', String(fields.label)));
  let kept = ihdrEnd;
  for (const { type, offset, length } of chunksBeforeImageData(png)) {
    const end = offset + 12 + length;
    if (type === 'tEXt' && isOurKeyword(png.subarray(offset + 8, end - 4))) {
      chunks.push(png.subarray(kept, offset));
      kept = end;
    }
  }
  chunks.push(png.subarray(kept));
  return Buffer.concat(chunks);
}

function isOurKeyword(textBody: Uint8Array): boolean {
  const nul = textBody.indexOf(0);
  return (
    nul > 0 && (PNG_RECORD_KEYWORDS as readonly string[]).includes(Buffer.from(textBody.subarray(0, nul)).toString('latin1'))
  );
}

export type PngRecordText = { ok: true; text: Partial<Record<PngRecordKeyword, string>> } | { ok: false; error: string };

/**
 * Reads our tEXt fields from a PNG record, walking chunk headers up to the first IDAT (the
 * fields must come before the image data; the image data itself is left to the decoder,
 * which checks every chunk again). A field whose chunk is damaged (CRC), repeated or
 * oversized is an error, not a guess: the frame would otherwise be filed under the wrong
 * camera or time.
 */
export function readPngRecordText(data: Uint8Array): PngRecordText {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const text: Partial<Record<PngRecordKeyword, string>> = {};
  for (const { type, offset, length } of chunksBeforeImageData(data)) {
    if (type === 'tEXt') {
      const body = data.subarray(offset + 8, offset + 8 + length);
      const nul = body.indexOf(0);
      const keyword = nul > 0 ? Buffer.from(body.subarray(0, nul)).toString('latin1') : '';
      if ((PNG_RECORD_KEYWORDS as readonly string[]).includes(keyword)) {
        const name = keyword as PngRecordKeyword;
        if (crc32(data.subarray(offset + 4, offset + 8 + length)) !== view.getUint32(offset + 8 + length)) {
          return { ok: false, error: `the PNG record's ${name} text chunk is damaged (CRC mismatch): resend the frame` };
        }
        if (text[name] !== undefined)
          return { ok: false, error: `the PNG record has two ${name} text chunks: send each field once` };
        if (length - nul - 1 > MAX_TEXT_VALUE_BYTES) {
          return {
            ok: false,
            error: `the PNG record's ${name} text chunk is ${length - nul - 1} bytes long: send at most ${MAX_TEXT_VALUE_BYTES}`,
          };
        }
        text[name] = Buffer.from(body.subarray(nul + 1)).toString('latin1');
      }
    }
  }
  return { ok: true, text };
}
