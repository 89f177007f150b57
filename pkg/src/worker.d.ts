// tkre-web/worker: the module a Worker runs (`new Worker(new URL('tkre-web/worker', ...),
// {type: 'module'})`, or the `worker` option of createWorkerExtractor). It exports nothing;
// imported outside a worker it does nothing.
export {};
