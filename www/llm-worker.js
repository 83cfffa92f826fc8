// The in-page LLM's dedicated web worker: loads the `edgewise-llm-worker` wasm module,
// whose start function installs the message handler and posts "Ready" to the page.
// The page starts it only when the chat panel is opened.
import init from './edgewise_llm_worker.js';

init().catch((err) => {
  self.postMessage({ Error: `The LLM worker could not start: ${err}` });
});
