/** The default model's files by name (manifest.json, config.json, model.safetensors,
 *  tokenizer.json), as URLs; pass it as `modelUrl` or leave `modelUrl` out. */
export declare const modelFiles: Readonly<Record<'manifest.json' | 'config.json' | 'model.safetensors' | 'tokenizer.json', string>>;
