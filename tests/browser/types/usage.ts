// An application's use of the package, checked by tsc (types.test.js): every call here must
// type-check, and every line under @ts-expect-error must not.
import {
  createExtractor,
  createWorkerExtractor,
  type Example,
  type Prediction,
  type QueryError,
  type RelationExtractor,
  type WorkerExtractor,
} from '../../../pkg/src/index.js';

async function application(): Promise<void> {
  const controller = new AbortController();
  const extractor: RelationExtractor = await createExtractor({ backend: 'cpu', signal: controller.signal });
  const worker: WorkerExtractor = await createWorkerExtractor({ modelUrl: new URL('https://example.org/model/') });

  await extractor.addRelation('founded by', {
    name: 'founded by',
    description: 'the founder of an organisation',
    examples: '[E1]Apple[/E1] was founded by [E2]Steve Jobs[/E2].',
  });
  const offsets: Example = { text: 'Curie was born in Warsaw.', head: { start: 0, end: 5 }, tail: { start: 18, end: 24 }, headType: 'person' };
  await worker.addExamples('place of birth', [offsets], { signal: controller.signal });

  const one: Prediction = await extractor.classify('[E1]Einstein[/E1] was born in [E2]Ulm[/E2].');
  const best: string = one.ranked[0].relation;
  const none: boolean = one.noneOfTheAbove;
  const many: (Prediction | QueryError)[] = await worker.classify([offsets, 'no marks'], { signal: controller.signal });
  for (const item of many) {
    const text: string = 'error' in item ? `${item.kind}: ${item.error}` : item.ranked[0].relation;
    void text;
  }
  const vector: number[] = await extractor.embed('a sentence');
  const vectors: number[][] = await worker.embed(['a', 'b'], { signal: controller.signal });
  const backend: string = worker.backend;
  const verified: boolean = extractor.loadInfo.verified;
  const maxLength: number | undefined = extractor.manifest?.max_length;
  await extractor.dispose();
  void [best, none, vector, vectors, backend, verified, maxLength];

  // @ts-expect-error test hooks are not part of the public API
  await extractor.simulateDeviceLoss();
  // @ts-expect-error a worker extractor is not a RelationExtractor
  const notOne: RelationExtractor = worker;
  // @ts-expect-error classify's second argument is {signal}
  await extractor.classify('x', 0.5);
  // @ts-expect-error the manifest may be absent (a directory loaded unverified)
  const name: string = extractor.manifest.name;
  void [notOne, name];
}
void application;
