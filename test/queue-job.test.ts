// The job layout's checks that need no Redis: base64 fields decoded and checked in one pass; images
// stored beside the job (layout 2) described by their length, under a key named by the job.
import { HgadArgumentError } from '../lib/errors';
import { decodeBase64, imageKey, JOB_FORMAT, parseJobData } from '../lib/queue/job';

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

describe('parseJobData: stored images', () => {
  const job = { format: JOB_FORMAT, model: 'a'.repeat(64), submission: 's1', index: 0, id: 'x' };
  const parameterOf = (data: object, max = 1000): string | undefined => {
    try {
      parseJobData(data, max);
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(HgadArgumentError);
      return (e as HgadArgumentError).parameter;
    }
  };
  test('encoded and raw images by length; layout-1 jobs with base64 images still taken', () => {
    expect(parameterOf({ ...job, image: { stored: 1000 } })).toBeUndefined();
    expect(parameterOf({ ...job, image: { stored: 12, width: 2, height: 2, channels: 3 } })).toBeUndefined();
    expect(parameterOf({ ...job, format: 1, image: { bytes: 'AAAA' } })).toBeUndefined();
  });
  test.each([
    ['a length over maxImageBytes', { stored: 1001 }, 'job.image.stored'],
    ['a length of 0', { stored: 0 }, 'job.image.stored'],
    ['a length that is not an integer', { stored: '10' }, 'job.image.stored'],
    ['a key of its own', { stored: 10, key: 'other' }, 'job.image'],
  ])('refuses %s, naming the field', (_, image, parameter) => {
    expect(parameterOf({ ...job, image })).toBe(parameter);
  });
  test('a layout-1 job cannot have a stored image; unknown layouts are refused', () => {
    expect(parameterOf({ ...job, format: 1, image: { stored: 10 } })).toBe('job.image');
    expect(parameterOf({ ...job, format: 3, image: { stored: 10 } })).toBe('job.format');
  });
  test("the key is the job's own, under the queue's keys", () => {
    expect(imageKey('hgad', 'hgad-0123', 's1.7')).toBe('hgad:hgad-0123:image:s1.7');
  });
});
