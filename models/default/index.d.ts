/** The default model's files by name (manifest.json, config.json, model.safetensors,
 *  tokenizer.json, mention_head.json: the learned mention proposer of `extract`), as URLs;
 *  pass it as `modelUrl` or leave `modelUrl` out. */
export declare const modelFiles: Readonly<Record<'manifest.json' | 'config.json' | 'model.safetensors' | 'tokenizer.json' | 'mention_head.json', string>>;
