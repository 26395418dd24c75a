import { expect, it } from 'vitest';
import { onUploads, uploadStarted, uploadsRunning } from './uploads-running.js';

it('counts uploads once each and calls the hooks when the count leaves zero and comes back to it', () => {
  const calls: string[] = [];
  onUploads({ firstStarted: () => calls.push('first'), lastEnded: () => calls.push('last') });
  const before = uploadsRunning();
  expect(before).toBe(0);

  const one = uploadStarted();
  const two = uploadStarted();
  expect(uploadsRunning()).toBe(2);
  expect(calls).toEqual(['first']);

  one();
  one(); // a second call does not count the upload out twice
  expect(uploadsRunning()).toBe(1);
  expect(calls).toEqual(['first']);

  two();
  expect(uploadsRunning()).toBe(0);
  expect(calls).toEqual(['first', 'last']);
});

it('tells hooks registered while uploads run that they run', () => {
  const done = uploadStarted();
  const calls: string[] = [];
  onUploads({ firstStarted: () => calls.push('first'), lastEnded: () => calls.push('last') });
  expect(calls).toEqual(['first']);
  done();
  expect(calls).toEqual(['first', 'last']);
});
