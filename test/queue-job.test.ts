// The job layout's checks that need no Redis: base64 fields decoded and checked in one pass.
import { HgadArgumentError } from '../lib/errors';
import { decodeBase64 } from '../lib/queue/job';

describe('decodeBase64', () => {
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) & 255));
  test.each([0, 1, 2])('round-trips data with %i padding characters', (cut) => {
    const b = bytes.subarray(0, 999 - cut);
    expect(decodeBase64('job.image.bytes', b.toString('base64')).equals(b)).toBe(true);
  });
  test.each([
    ['a character outside the alphabet', (s: string) => `${s.slice(0, 10)}%${s.slice(11)}`],
    ['a space', (s: string) => `${s.slice(0, 10)} ${s.slice(11)}`],
    ['padding in the middle', (s: string) => `${s.slice(0, 10)}=${s.slice(11)}`],
    ['only padding', () => '===='],
  ])('refuses %s, naming the field', (_, spoil) => {
    const v = spoil(bytes.toString('base64'));
    expect(v.length % 4).toBe(0);
    let error: unknown;
    try {
      decodeBase64('job.image.raw', v);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HgadArgumentError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'job.image.raw' });
  });
});
