export default {
  // The default model's files are bundled as assets (tkre-web-model-default); nothing is
  // fetched from elsewhere.
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  worker: { format: 'es' },
};
