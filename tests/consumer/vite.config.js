export default {
  // The default model's files are bundled as assets (tkre-web-model-default); nothing is
  // fetched from elsewhere.
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  worker: { format: 'es' },
  // The packages are file: links to the repository here; keep their node_modules paths so that
  // tkre-web finds tkre-web-model-default beside it, as it does when installed from the registry.
  resolve: { preserveSymlinks: true },
};
