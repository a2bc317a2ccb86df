// Heatmap colours (jet, worked by hand from matplotlib's definition) and the PNGs sharp makes of them.
import sharp from 'sharp';

import { HgadArgumentError } from '../lib/errors';
import { colorize, heatmapPng, overlayPng } from '../lib/score/heatmap';

const range = { min: 2, max: 6 };

test('colours of the range ends, the middle and three quarters; clamping outside the range', async () => {
  // Colour index floor(256 t) (max 255) at x = index / 255; channels round(255 * jet(x)):
  // 0 -> (0, 0, 0.5); 255 -> (0.5, 0, 0); t = 0.5 -> index 128: r = (128 - 89.25) / 0.31 = 125,
  // g = 255, b = 255 - (128 - 86.7) / 0.31 = 121.8; t = 0.75 -> index 192: r = 255,
  // g = 255 - (192 - 163.2) / 0.27 = 148.3, b = 0.
  const map = Float32Array.from([2, 6, 4, 5, -10, 100]);
  const rgb = await colorize(map, 2, 3, range);
  expect(Array.from(rgb)).toEqual([
    0, 0, 128, 128, 0, 0, 125, 255, 122, //
    255, 148, 0, 0, 0, 128, 128, 0, 0,
  ]);
});

test('heatmapPng decodes to the colours at the right size', async () => {
  const height = 5, width = 8;
  const map = Float32Array.from({ length: height * width }, (_, i) => 2 + (4 * i) / (height * width - 1));
  const png = await heatmapPng(map, height, width, range);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels, info.format]).toEqual([width, height, 3, 'raw']);
  expect(Array.from(data)).toEqual(Array.from(await colorize(map, height, width, range)));
});

test('overlayPng blends the heatmap over the image with the given alpha', async () => {
  const height = 4, width = 6, n = height * width;
  const image = Uint8Array.from({ length: n * 3 }, (_, i) => (i * 37) % 256);
  const map = Float32Array.from({ length: n }, (_, i) => 2 + (4 * i) / (n - 1));
  const heat = await colorize(map, height, width, range);
  for (const alpha of [0, 0.5, 1]) {
    const png = await overlayPng(image, width, height, map, range, alpha);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([width, height, 3]);
    let worst = 0;
    for (let i = 0; i < n * 3; i++) worst = Math.max(worst, Math.abs(data[i]! - ((1 - alpha) * image[i]! + alpha * heat[i]!)));
    expect(worst).toBeLessThanOrEqual(1);
  }
});

test('bad input is rejected naming the parameter', async () => {
  const map = new Float32Array(6);
  await expect(colorize(map, 2, 4, range)).rejects.toMatchObject({ parameter: 'map' });
  await expect(colorize(map, 2, 3, { min: 1, max: 1 })).rejects.toMatchObject({ parameter: 'range.max' });
  await expect(colorize(Float32Array.from([0, 1, NaN, 0, 0, 0]), 2, 3, range)).rejects.toMatchObject({
    name: 'HgadNonFiniteError', parameter: 'map', index: 2,
  });
  await expect(overlayPng(new Uint8Array(5), 3, 2, map, range)).rejects.toBeInstanceOf(HgadArgumentError);
  await expect(overlayPng(new Uint8Array(18), 3, 2, map, range, 2)).rejects.toMatchObject({ parameter: 'alpha' });
});
