export default {
  // The model is served beside the built app; nothing is fetched from elsewhere.
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  worker: { format: 'es' },
};
