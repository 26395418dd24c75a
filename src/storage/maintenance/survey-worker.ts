/**
 * A survey worker thread (survey.ts): takes the survey's pieces of work one at a time from the counter
 * it shares with the other threads (takePiece) and answers each with what survey-reader.ts finds, over
 * its own driver on the root it is given, until no piece is left; then it says so and exits. A failure is answered
 * as an error message, and the worker stops; the main thread fails the survey with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SurveyReply, SurveyWorkerData } from './survey.js';
import { surveyReader, takePiece } from './survey-reader.js';

const port = parentPort;
if (port === null) throw new Error('survey-worker.ts runs as a worker thread (survey.ts starts it)');
const { root, pieces, next } = workerData as SurveyWorkerData;
const read = surveyReader(root);

let failed = false;
for (let id = takePiece(next, pieces.length); id !== undefined && !failed; id = takePiece(next, pieces.length)) {
  try {
    port.postMessage({ id, found: JSON.stringify(await read(pieces[id]!)) } satisfies SurveyReply);
  } catch (err) {
    port.postMessage({ id, error: err instanceof Error ? err.message : String(err) } satisfies SurveyReply);
    failed = true;
  }
}
if (!failed) port.postMessage({ done: true } satisfies SurveyReply);
