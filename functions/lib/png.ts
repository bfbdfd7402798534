/**
 * A small, strict PNG codec over typed arrays: the decoder turns any standard PNG (every
 * colour type and bit depth, Adam7 interlacing, tRNS transparency) into 8-bit grey on white
 * paper, and the encoder writes grey or RGB frames.
 *
 * Why not sharp for every frame: sharp's (libvips') per-call cost alone is over 20x what
 * decoding a 28x28 frame takes here (node's native zlib does the inflating). The measured
 * figures, and which frames go to sharp, are in `decode.ts`.
 *
 * Every problem is reported as a {@link PngFormatError} whose `kind` maps onto a reject reason;
 * the chunk walk checks each chunk's CRC and bounds before anything is inflated, and the
 * declared size is checked against the caller's pixel bound before any pixel memory exists.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** What went wrong with a would-be PNG; `decode.ts` turns it into a reject reason. */
export type PngProblem = 'not_png' | 'corrupt_png' | 'image_too_large';

export class PngFormatError extends Error {
  constructor(
    readonly kind: PngProblem,
    message: string,
  ) {
    super(message);
    this.name = 'PngFormatError';
  }
}

/** The IHDR fields, as declared by the file. */
export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

/** A PNG split into the chunks that decoding needs, every CRC already checked. */
export interface PngChunks {
  header: PngHeader;
  palette: Uint8Array | undefined;
  transparency: Uint8Array | undefined;
  idat: Buffer[];
  idatBytes: number;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const KNOWN_CRITICAL = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);

/** Names a few common non-PNG formats so the reject sentence can say what arrived instead. */
export function sniffFormat(bytes: Uint8Array): string {
  const b = (i: number): number => bytes[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'JPEG';
  if (b(0) === 0x47 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x38) return 'GIF';
  if (b(0) === 0x52 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x46 && b(8) === 0x57 && b(9) === 0x45) return 'WebP';
  if (b(0) === 0x42 && b(1) === 0x4d) return 'BMP';
  if ((b(0) === 0x49 && b(1) === 0x49 && b(2) === 0x2a) || (b(0) === 0x4d && b(1) === 0x4d && b(3) === 0x2a)) return 'TIFF';
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'SVG';
  if (head.startsWith('<')) return 'XML/HTML text';
  let printable = 0;
  const n = Math.min(bytes.length, 256);
  for (let i = 0; i < n; i++) {
    const c = bytes[i] ?? 0;
    if ((c >= 0x20 && c < 0x7f) || c === 0x09 || c === 0x0a || c === 0x0d) printable++;
  }
  if (n > 0 && printable === n) return 'plain text';
  return 'an unknown format';
}

/**
 * Walks the chunk list: signature, IHDR first and valid, every chunk's bounds and CRC, an
 * IEND at the end (bytes after IEND are ignored, as every mainstream decoder does).
 * @throws PngFormatError
 */
export function readPngChunks(png: Uint8Array): PngChunks {
  if (png.length < 8 || !PNG_SIGNATURE.equals(png.subarray(0, 8))) {
    if (png.length >= 4 && png[1] === 0x50 && png[2] === 0x4e && png[3] === 0x47) {
      throw new PngFormatError(
        'corrupt_png',
        'the PNG signature is damaged (bytes altered in transit, e.g. a text-mode transfer)',
      );
    }
    throw new PngFormatError('not_png', `the data is ${sniffFormat(png)}, not PNG`);
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let offset = 8;
  let header: PngHeader | undefined;
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined;
  const idat: Buffer[] = [];
  let idatBytes = 0;
  let sawIend = false;
  let afterIdat = false;
  while (offset < png.length) {
    if (offset + 12 > png.length) {
      throw new PngFormatError('corrupt_png', `the PNG is truncated (a chunk header at byte ${offset} is cut off)`);
    }
    const length = view.getUint32(offset);
    const type = String.fromCharCode(png[offset + 4] ?? 0, png[offset + 5] ?? 0, png[offset + 6] ?? 0, png[offset + 7] ?? 0);
    if (!/^[A-Za-z]{4}$/.test(type)) {
      throw new PngFormatError('corrupt_png', `the PNG has a malformed chunk at byte ${offset}`);
    }
    if (length > 0x7fffffff || offset + 12 + length > png.length) {
      throw new PngFormatError(
        'corrupt_png',
        `the PNG is truncated (chunk ${type} at byte ${offset} runs past the end of the data)`,
      );
    }
    const body = png.subarray(offset + 8, offset + 8 + length);
    const stored = view.getUint32(offset + 8 + length);
    if (crc32(png.subarray(offset + 4, offset + 8 + length)) !== stored) {
      throw new PngFormatError('corrupt_png', `the PNG is damaged (CRC mismatch in chunk ${type} at byte ${offset})`);
    }
    if (header === undefined && type !== 'IHDR') {
      throw new PngFormatError('corrupt_png', 'the PNG does not start with an IHDR chunk');
    }
    switch (type) {
      case 'IHDR':
        if (header !== undefined) throw new PngFormatError('corrupt_png', 'the PNG has two IHDR chunks');
        header = parseHeader(body);
        break;
      case 'PLTE':
        if (length % 3 !== 0 || length === 0 || length > 768) {
          throw new PngFormatError('corrupt_png', 'the PNG palette (PLTE) has an invalid length');
        }
        palette = body;
        break;
      case 'tRNS':
        transparency = body;
        break;
      case 'IDAT':
        if (afterIdat) throw new PngFormatError('corrupt_png', 'the PNG image data (IDAT) is not contiguous');
        idat.push(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
        idatBytes += length;
        break;
      case 'IEND':
        sawIend = true;
        break;
      default:
        // An unknown critical chunk (upper-case first letter) changes how pixels must be read.
        if (!KNOWN_CRITICAL.has(type) && (type.charCodeAt(0) & 0x20) === 0) {
          throw new PngFormatError('corrupt_png', `the PNG needs an unsupported critical chunk ${type}`);
        }
    }
    if (idat.length > 0 && type !== 'IDAT') afterIdat = true;
    offset += 12 + length;
    if (sawIend) break;
  }
  if (header === undefined) throw new PngFormatError('corrupt_png', 'the PNG has no IHDR chunk');
  if (!sawIend) throw new PngFormatError('corrupt_png', 'the PNG is truncated (no IEND chunk)');
  if (idat.length === 0) throw new PngFormatError('corrupt_png', 'the PNG has no image data (IDAT)');
  if (header.colorType === 3 && palette === undefined) {
    throw new PngFormatError('corrupt_png', 'the palette PNG has no PLTE chunk');
  }
  return { header, palette, transparency, idat, idatBytes };
}

function parseHeader(body: Uint8Array): PngHeader {
  if (body.length !== 13) throw new PngFormatError('corrupt_png', 'the PNG header (IHDR) has the wrong length');
  const view = new DataView(body.buffer, body.byteOffset, 13);
  const width = view.getUint32(0);
  const height = view.getUint32(4);
  const bitDepth = body[8] ?? 0;
  const colorType = body[9] ?? 0;
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new PngFormatError('corrupt_png', `the PNG header declares an invalid size ${width}x${height}`);
  }
  if (!(ALLOWED_DEPTHS[colorType] ?? []).includes(bitDepth)) {
    throw new PngFormatError(
      'corrupt_png',
      `the PNG header declares an invalid colour type ${colorType} / bit depth ${bitDepth}`,
    );
  }
  if (body[10] !== 0 || body[11] !== 0 || (body[12] !== 0 && body[12] !== 1)) {
    throw new PngFormatError('corrupt_png', 'the PNG header declares an unknown compression, filter or interlace method');
  }
  return { width, height, bitDepth, colorType, interlaced: body[12] === 1 };
}

/** Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

function rowBytes(width: number, header: PngHeader): number {
  const bitsPerPixel = header.bitDepth * (CHANNELS[header.colorType] ?? 1);
  return Math.ceil((width * bitsPerPixel) / 8);
}

/** Size of the filtered (inflated) image data the header implies. */
export function expectedDataLength(header: PngHeader): number {
  if (!header.interlaced) return header.height * (1 + rowBytes(header.width, header));
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((header.width - x0) / dx);
    const h = Math.ceil((header.height - y0) / dy);
    if (w > 0 && h > 0) total += h * (1 + rowBytes(w, header));
  }
  return total;
}

/**
 * Reverses the PNG row filters in place over `rows` rows of `stride` bytes each (the filter
 * byte first), starting at `start`. bpp is the filter's byte distance (>= 1).
 */
function unfilter(data: Uint8Array, start: number, rows: number, stride: number, bpp: number): void {
  const lineBytes = stride - 1;
  for (let y = 0; y < rows; y++) {
    const line = start + y * stride;
    const filter = data[line];
    const cur = line + 1;
    const prev = line + 1 - stride; // only read when y > 0
    switch (filter) {
      case 0:
        break;
      case 1:
        for (let i = bpp; i < lineBytes; i++)
          data[cur + i] = ((data[cur + i] as number) + (data[cur + i - bpp] as number)) & 0xff;
        break;
      case 2:
        if (y > 0)
          for (let i = 0; i < lineBytes; i++) data[cur + i] = ((data[cur + i] as number) + (data[prev + i] as number)) & 0xff;
        break;
      case 3:
        if (y > 0) {
          for (let i = 0; i < bpp; i++) data[cur + i] = ((data[cur + i] as number) + ((data[prev + i] as number) >> 1)) & 0xff;
          for (let i = bpp; i < lineBytes; i++) {
            data[cur + i] =
              ((data[cur + i] as number) + (((data[cur + i - bpp] as number) + (data[prev + i] as number)) >> 1)) & 0xff;
          }
        } else {
          for (let i = bpp; i < lineBytes; i++)
            data[cur + i] = ((data[cur + i] as number) + ((data[cur + i - bpp] as number) >> 1)) & 0xff;
        }
        break;
      case 4:
        if (y > 0) {
          for (let i = 0; i < bpp; i++) data[cur + i] = ((data[cur + i] as number) + (data[prev + i] as number)) & 0xff;
          for (let i = bpp; i < lineBytes; i++) {
            const a = data[cur + i - bpp] as number;
            const b = data[prev + i] as number;
            const c = data[prev + i - bpp] as number;
            const p = a + b - c;
            const pa = p > a ? p - a : a - p;
            const pb = p > b ? p - b : b - p;
            const pc = p > c ? p - c : c - p;
            const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            data[cur + i] = ((data[cur + i] as number) + pred) & 0xff;
          }
        } else {
          // Paeth with no previous row is the Sub filter.
          for (let i = bpp; i < lineBytes; i++)
            data[cur + i] = ((data[cur + i] as number) + (data[cur + i - bpp] as number)) & 0xff;
        }
        break;
      default:
        throw new PngFormatError('corrupt_png', `the PNG image data is damaged (unknown row filter ${String(filter)})`);
    }
  }
}

/** ITU-R 601-2 luma in 16.16 fixed point, as PIL's convert('L') computes it. */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** Composites grey `v` with alpha `a` (both 0-255) onto white paper. */
function onWhite(v: number, a: number): number {
  return a === 255 ? v : ((v * a + 255 * (255 - a) + 127) / 255) | 0;
}

/**
 * Converts one unfiltered pass (width x height samples starting at `start`) to grey on
 * white, writing pixel (x, y) of the pass to out[(y0 + y*dy) * W + x0 + x*dx].
 */
function convertPass(
  data: Uint8Array,
  start: number,
  w: number,
  h: number,
  stride: number,
  c: PngChunks,
  out: Uint8Array,
  outWidth: number,
  x0: number,
  y0: number,
  dx: number,
  dy: number,
): void {
  const { bitDepth, colorType } = c.header;
  const trns = c.transparency;
  // Grey lookup for palette images (transparency flattened onto white).
  let paletteGrey: Uint8Array | undefined;
  if (colorType === 3) {
    const plte = c.palette as Uint8Array;
    paletteGrey = new Uint8Array(256).fill(255); // out-of-range indices read as paper, as libpng does
    const entries = plte.length / 3;
    for (let i = 0; i < entries; i++) {
      const v = luma(plte[i * 3] as number, plte[i * 3 + 1] as number, plte[i * 3 + 2] as number);
      const a = trns !== undefined && i < trns.length ? (trns[i] as number) : 255;
      paletteGrey[i] = onWhite(v, a);
    }
  }
  // tRNS for grey/RGB names one colour (at the image's own bit depth) that is fully transparent.
  const keyGrey =
    colorType === 0 && trns !== undefined && trns.length >= 2 ? ((trns[0] as number) << 8) | (trns[1] as number) : -1;
  const keyR = colorType === 2 && trns !== undefined && trns.length >= 6 ? ((trns[0] as number) << 8) | (trns[1] as number) : -1;
  const keyG = keyR >= 0 ? (((trns as Uint8Array)[2] as number) << 8) | ((trns as Uint8Array)[3] as number) : -1;
  const keyB = keyR >= 0 ? (((trns as Uint8Array)[4] as number) << 8) | ((trns as Uint8Array)[5] as number) : -1;

  for (let y = 0; y < h; y++) {
    const row = start + y * stride + 1;
    let o = (y0 + y * dy) * outWidth + x0;
    if (bitDepth < 8) {
      const mask = (1 << bitDepth) - 1;
      const scale = colorType === 0 ? 255 / mask : 1;
      const perByte = 8 / bitDepth;
      for (let x = 0; x < w; x++) {
        const byte = data[row + ((x / perByte) | 0)] as number;
        const shift = 8 - bitDepth * ((x % perByte) + 1);
        const s = (byte >> shift) & mask;
        let v: number;
        if (colorType === 3) v = (paletteGrey as Uint8Array)[s] as number;
        else v = s === keyGrey ? 255 : Math.round(s * scale);
        out[o] = v;
        o += dx;
      }
      continue;
    }
    if (bitDepth === 8) {
      switch (colorType) {
        case 0:
          for (let x = 0; x < w; x++, o += dx) {
            const s = data[row + x] as number;
            out[o] = s === keyGrey ? 255 : s;
          }
          break;
        case 3:
          for (let x = 0; x < w; x++, o += dx) out[o] = (paletteGrey as Uint8Array)[data[row + x] as number] as number;
          break;
        case 4:
          for (let x = 0; x < w; x++, o += dx) out[o] = onWhite(data[row + 2 * x] as number, data[row + 2 * x + 1] as number);
          break;
        case 2:
          for (let x = 0; x < w; x++, o += dx) {
            const p = row + 3 * x;
            const r = data[p] as number;
            const g = data[p + 1] as number;
            const b = data[p + 2] as number;
            out[o] = r === keyR && g === keyG && b === keyB ? 255 : luma(r, g, b);
          }
          break;
        default: // 6
          for (let x = 0; x < w; x++, o += dx) {
            const p = row + 4 * x;
            out[o] = onWhite(luma(data[p] as number, data[p + 1] as number, data[p + 2] as number), data[p + 3] as number);
          }
      }
      continue;
    }
    // 16 bits per sample: compare transparency keys at full depth, then keep 8 bits (rounded).
    const s16 = (i: number): number => ((data[i] as number) << 8) | (data[i + 1] as number);
    const to8 = (v: number): number => ((v * 255 + 32767) / 65535) | 0;
    switch (colorType) {
      case 0:
        for (let x = 0; x < w; x++, o += dx) {
          const s = s16(row + 2 * x);
          out[o] = s === keyGrey ? 255 : to8(s);
        }
        break;
      case 4:
        for (let x = 0; x < w; x++, o += dx) out[o] = onWhite(to8(s16(row + 4 * x)), to8(s16(row + 4 * x + 2)));
        break;
      case 2:
        for (let x = 0; x < w; x++, o += dx) {
          const p = row + 6 * x;
          const r = s16(p);
          const g = s16(p + 2);
          const b = s16(p + 4);
          out[o] = r === keyR && g === keyG && b === keyB ? 255 : luma(to8(r), to8(g), to8(b));
        }
        break;
      default: // 6
        for (let x = 0; x < w; x++, o += dx) {
          const p = row + 8 * x;
          out[o] = onWhite(luma(to8(s16(p)), to8(s16(p + 2)), to8(s16(p + 4))), to8(s16(p + 6)));
        }
    }
  }
}

/** Inflates the image data; the bound stops a stream that inflates past what the header declares. */
function inflateOptions(c: PngChunks): { compressed: Buffer; expected: number; maxOutputLength: number } {
  const expected = expectedDataLength(c.header);
  const compressed = c.idat.length === 1 ? (c.idat[0] as Buffer) : Buffer.concat(c.idat, c.idatBytes);
  // Slack for encoders that append a few junk bytes after the image data.
  return { compressed, expected, maxOutputLength: expected + 4096 };
}

function inflateFailed(error: unknown): PngFormatError {
  const detail = error instanceof Error ? error.message : String(error);
  return new PngFormatError('corrupt_png', `the PNG image data cannot be decompressed (${detail})`);
}

/**
 * Decodes parsed chunks to 8-bit grey (0 = black), transparency composited onto white.
 * The caller has already checked the declared size against its pixel bound.
 * @throws PngFormatError('corrupt_png') when the compressed data is damaged or short.
 */
export function decodePngChunks(c: PngChunks): { data: Uint8Array; width: number; height: number } {
  const { compressed, expected, maxOutputLength } = inflateOptions(c);
  let raw: Buffer;
  try {
    raw = inflateSync(compressed, { maxOutputLength });
  } catch (error: unknown) {
    throw inflateFailed(error);
  }
  return unpackPixels(c, raw, expected);
}

function unpackPixels(c: PngChunks, raw: Buffer, expected: number): { data: Uint8Array; width: number; height: number } {
  const { header } = c;
  if (raw.length < expected) {
    throw new PngFormatError('corrupt_png', `the PNG image data is truncated (${raw.length} of ${expected} bytes)`);
  }
  const bpp = Math.max(1, (header.bitDepth * (CHANNELS[header.colorType] ?? 1)) >> 3);
  const out = new Uint8Array(header.width * header.height);
  if (!header.interlaced) {
    const stride = 1 + rowBytes(header.width, header);
    unfilter(raw, 0, header.height, stride, bpp);
    convertPass(raw, 0, header.width, header.height, stride, c, out, header.width, 0, 0, 1, 1);
  } else {
    let start = 0;
    for (const [x0, y0, dx, dy] of ADAM7) {
      const w = Math.ceil((header.width - x0) / dx);
      const h = Math.ceil((header.height - y0) / dy);
      if (w <= 0 || h <= 0) continue;
      const stride = 1 + rowBytes(w, header);
      unfilter(raw, start, h, stride, bpp);
      convertPass(raw, start, w, h, stride, c, out, header.width, x0, y0, dx, dy);
      start += h * stride;
    }
  }
  return { data: out, width: header.width, height: header.height };
}

/** Where one chunk lies in a PNG: its type, its first byte (the length field) and its body length. */
export interface ChunkSpan {
  type: string;
  offset: number;
  length: number;
}

/**
 * The chunks ahead of the image data, read loosely: headers and bounds only, no CRC check.
 * Stops at the first IDAT or IEND, or at a chunk that runs past the end (the decoder's strict
 * walk, {@link readPngChunks}, reports that damage). For readers of the metadata chunks.
 */
export function* chunksBeforeImageData(png: Uint8Array): Generator<ChunkSpan> {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  for (let offset = 8; offset + 12 <= png.length; ) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(png[offset + 4] ?? 0, png[offset + 5] ?? 0, png[offset + 6] ?? 0, png[offset + 7] ?? 0);
    if (type === 'IDAT' || type === 'IEND') return;
    if (length > 0x7fffffff || offset + 12 + length > png.length) return;
    yield { type, offset, length };
    offset += 12 + length;
  }
}

/** One PNG chunk: length, type, body and CRC. */
export function pngChunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

/** An IHDR chunk's 13-byte body (compression and filter method 0, the only ones defined). */
export function ihdrBody(width: number, height: number, bitDepth: number, colorType: number, interlace = 0): Buffer {
  const body = Buffer.alloc(13);
  body.writeUInt32BE(width, 0);
  body.writeUInt32BE(height, 4);
  body[8] = bitDepth;
  body[9] = colorType;
  body[12] = interlace;
  return body;
}

/**
 * Encodes 8-bit pixels (1 = grey, 3 = RGB, 4 = RGBA channels, row-major) as a PNG with no
 * row filters. Fast and dependency-free: used to render camera frames, not to archive them.
 */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 | 4, level = 6): Buffer {
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`encodePng: expected ${width * height * channels} bytes, got ${pixels.length}`);
  }
  const stride = width * channels + 1;
  const filtered = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    filtered.set(pixels.subarray(y * width * channels, (y + 1) * width * channels), y * stride + 1);
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdrBody(width, height, 8, channels === 1 ? 0 : channels === 3 ? 2 : 6)),
    pngChunk('IDAT', deflateSync(filtered, { level })),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}
