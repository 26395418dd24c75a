/**
 * A survey worker thread (survey.ts): answers the main thread's pieces of work one at a time with
 * what survey-reader.ts finds, over its own driver on the root it is given. A failure is answered as
 * an error message; the main thread fails the survey with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SurveyReply, SurveyRequest, SurveyWorkerData } from './survey.js';
import { surveyReader } from './survey-reader.js';

const port = parentPort;
if (port === null) throw new Error('survey-worker.ts runs as a worker thread (survey.ts starts it)');
const read = surveyReader((workerData as SurveyWorkerData).root);

port.on('message', (request: SurveyRequest) => {
  read(request.work).then(
    (found) => port.postMessage({ id: request.id, found: JSON.stringify(found) } satisfies SurveyReply),
    (err: unknown) => port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies SurveyReply),
  );
});
