// llama.cpp itself, run from Python by ftlab.export.llama_cpp (node-llama-cpp's prebuilt CPU binaries).
//
// Reads one JSON object on stdin: {"files": [gguf path, ...], "prompts": [text, ...], "max_tokens": n,
// "context_size": n, "threads": n, "modules": node_modules folder}. Each prompt is a whole prompt text with its
// special tokens written out (the chat template already applied), as ftlab gives it to transformers. For each
// file it prints one JSON line: each prompt's tokens as llama.cpp reads them, and the tokens it generates
// greedily (temperature 0, no penalties) up to and including an end-of-generation token, or max_tokens of them.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const job = JSON.parse(readFileSync(0, "utf8"));
const require = createRequire(path.join(job.modules, "..", "package.json"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: job.threads });

for (const file of job.files) {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: job.context_size, threads: job.threads });
  const results = [];
  for (const prompt of job.prompts) {
    const tokens = model.tokenize(prompt, true);  // true: special tokens written in the text are read as such
    const sequence = context.getSequence();
    const generated = [];
    for await (const token of sequence.evaluate(tokens, { temperature: 0, yieldEogToken: true })) {
      generated.push(token);
      if (model.isEogToken(token) || generated.length >= job.max_tokens) break;
    }
    results.push({ tokens: Array.from(tokens), generated, text: model.detokenize(generated) });
    sequence.dispose();
  }
  console.log(JSON.stringify({ file, results }));
  await context.dispose();
  await model.dispose();
}
await llama.dispose();
