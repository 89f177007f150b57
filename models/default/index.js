// tkre-web-model-default: the default model of tkre-web, as URLs of its files. Each URL is
// written `new URL('./file', import.meta.url)` so that bundlers (Vite, webpack) copy the file
// with the app and give its final address; tkre-web loads the model from this map when no
// modelUrl is given, checking every file's sha256 against manifest.json.
export const modelFiles = Object.freeze({
  'manifest.json': new URL('./manifest.json', import.meta.url).href,
  'config.json': new URL('./config.json', import.meta.url).href,
  'model.safetensors': new URL('./model.safetensors', import.meta.url).href,
  'tokenizer.json': new URL('./tokenizer.json', import.meta.url).href,
  'mention_head.json': new URL('./mention_head.json', import.meta.url).href,
});
