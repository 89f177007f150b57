// Uses the package exactly as an app would: a bare import, bundled by Vite.
import { createWorkerExtractor } from 'tkre-web';

async function run() {
  const params = new URLSearchParams(location.search);
  // No modelUrl: the default model, from the tkre-web-model-default package, bundled by Vite.
  const model = params.get('model');
  const extractor = await createWorkerExtractor({
    ...(model ? { modelUrl: model } : {}),
    backend: params.get('backend') ?? 'auto',
  });
  await extractor.addExamples('place of birth', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
  await extractor.addExamples('employer', ['[E1]Tim Cook[/E1] is the chief executive of [E2]Apple[/E2].']);
  const prediction = await extractor.classify('[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].');
  document.getElementById('out').textContent = JSON.stringify(prediction);
  return { backend: extractor.backend, model: extractor.manifest.name, prediction };
}

window.consumerResult = run();
