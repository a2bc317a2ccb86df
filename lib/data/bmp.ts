// BMP input. sharp's bundled libvips has no BMP loader, yet BTAD ships .bmp images, so this file reads
// the BMP header in TypeScript and hands the pixel array to sharp as raw input: sharp strips the row
// padding, flips bottom-up rows and reorders BGR to RGB. No pixel is touched in TypeScript.
// Supported: uncompressed 24-bit, 32-bit (BI_RGB as BGRX, or BI_BITFIELDS with the standard BGRA masks),
// and 8-bit with a grey palette. Other variants (1/4/16-bit, RLE, colour palettes) are refused with a
// clear error: convert such files to PNG.
import sharp from 'sharp';
import type { Matrix3x3, Sharp } from 'sharp';
import { checkDeclaredSize, HgadImageError } from './decode-error';

export function isBmp(data: Buffer): boolean {
  return data.length >= 2 && data[0] === 0x42 && data[1] === 0x4d;
}

const BGR_TO_RGB: Matrix3x3 = [[0, 0, 1], [0, 1, 0], [1, 0, 0]];

function unsupported(file: string, what: string): HgadImageError {
  return new HgadImageError(file, `${what} BMP images are not supported; convert it to PNG`);
}

function corrupt(file: string, what: string): HgadImageError {
  return new HgadImageError(file, `corrupt BMP (${what})`);
}

const FILE_HEADER = 14;
/** BITMAPINFOHEADER and its extensions (V2, V3, V4, V5); 12 and 64 are OS/2's. */
const INFO_HEADERS = [40, 52, 56, 108, 124];
const BIT_DEPTHS = [1, 4, 8, 16, 24, 32];
const COMPRESSION_NAMES = ['none', 'RLE8', 'RLE4', 'bit-fields', 'JPEG', 'PNG', 'alpha bit-fields'];

/** The BMP as a sharp pipeline over decoded 8-bit pixels (1, 3 or 4 channels), plus its size. */
export async function openBmp(data: Buffer, file: string): Promise<{ image: Sharp; width: number; height: number }> {
  if (data.length < FILE_HEADER + 40) throw corrupt(file, `${data.length} bytes, shorter than its headers`);
  const offset = data.readUInt32LE(10);
  const dibSize = data.readUInt32LE(14);
  if (dibSize === 12 || dibSize === 64) throw unsupported(file, `OS/2 (header size ${dibSize})`);
  if (!INFO_HEADERS.includes(dibSize)) throw corrupt(file, `info header size ${dibSize} is not a BMP header size (${INFO_HEADERS.join(', ')})`);
  if (FILE_HEADER + dibSize > data.length) throw corrupt(file, `the ${dibSize}-byte info header is cut off at ${data.length} bytes`);
  const width = data.readInt32LE(18);
  const rawHeight = data.readInt32LE(22);
  const planes = data.readUInt16LE(26);
  const bpp = data.readUInt16LE(28);
  const compression = data.readUInt32LE(30);
  const height = Math.abs(rawHeight);
  const bottomUp = rawHeight > 0;
  if (planes !== 1) throw corrupt(file, `${planes} colour planes, where BMP has 1`);
  if (width <= 0 || height === 0) throw corrupt(file, `size ${width}x${rawHeight}`);
  checkDeclaredSize(file, width, height);
  if (!BIT_DEPTHS.includes(bpp)) throw corrupt(file, `bit depth ${bpp} is not a BMP bit depth (${BIT_DEPTHS.join(', ')})`);
  if (compression >= COMPRESSION_NAMES.length) throw corrupt(file, `compression ${compression} is not a BMP compression`);

  // Where the pixel array may start: after the headers, the bit-field masks that follow a 40-byte
  // header, and the palette. An offset inside them would read header bytes as pixels.
  let headersEnd = FILE_HEADER + dibSize;
  let channels: 1 | 3 | 4;
  let hasAlpha = false;
  if (bpp === 24 && compression === 0) channels = 3;
  else if (bpp === 32 && compression === 0) channels = 4;
  else if (bpp === 32 && (compression === 3 || compression === 6)) {
    // Masks follow a 40-byte header, or sit inside V2+ headers at the same place.
    const masks = compression === 6 || dibSize >= 56 ? 16 : 12;
    if (dibSize === 40) headersEnd += masks;
    if (FILE_HEADER + 40 + masks > data.length) throw corrupt(file, 'bit-field masks cut off');
    const [r, g, b] = [data.readUInt32LE(54), data.readUInt32LE(58), data.readUInt32LE(62)];
    if (r !== 0xff0000 || g !== 0xff00 || b !== 0xff) throw unsupported(file, 'non-standard bit-field');
    hasAlpha = masks === 16 && data.readUInt32LE(66) === 0xff000000;
    channels = 4;
  } else if (bpp === 8 && compression === 0) {
    const count = data.readUInt32LE(46) || 256;
    if (count > 256) throw corrupt(file, `a palette of ${count} colours for 8-bit pixels`);
    if (headersEnd + 4 * count > data.length) throw corrupt(file, 'palette cut off');
    // 256 entries at most: checks the palette, not the pixels.
    for (let i = 0; i < count; i++) {
      const at = headersEnd + 4 * i;
      if (data[at] !== i || data[at + 1] !== i || data[at + 2] !== i) throw unsupported(file, 'colour-palette 8-bit');
    }
    headersEnd += 4 * count;
    channels = 1;
  } else {
    throw unsupported(file, `${bpp}-bit${compression === 0 ? '' : ` ${COMPRESSION_NAMES[compression]}-compressed`}`);
  }
  if (offset < headersEnd || offset >= data.length) {
    throw corrupt(file, `pixel data offset ${offset} is not between the end of the headers (${headersEnd}) and the end of the file (${data.length})`);
  }

  const rowBytes = width * (bpp / 8);
  const stride = Math.ceil(rowBytes / 4) * 4;
  if (offset + stride * height > data.length) {
    throw corrupt(file, `truncated: ${offset + stride * height} bytes of pixels expected, file has ${data.length}`);
  }
  let packed = data.subarray(offset, offset + stride * height);
  if (stride !== rowBytes) {
    // Rows are padded to 4 bytes: view them as one grey image stride bytes wide and crop the padding.
    packed = await sharp(packed, { raw: { width: stride, height, channels: 1 } })
      .extract({ left: 0, top: 0, width: rowBytes, height }).toColourspace('b-w').raw().toBuffer();
  }
  let image = sharp(packed, { raw: { width, height, channels } });
  if (bottomUp) image = image.flip();
  if (channels === 1) return { image, width, height };
  if (channels === 4 && !hasAlpha) image = image.removeAlpha();
  image = image.recomb(BGR_TO_RGB);
  // Materialise so the caller's pipeline (resize, colour space) runs on an ordinary RGB(A) image.
  const { data: rgb, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { image: sharp(rgb, { raw: { width, height, channels: info.channels as 3 | 4 } }), width, height };
}
