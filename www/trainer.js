// The training race's dedicated web worker (PPO vs WM-PPO on burn): loads the
// `edgewise-trainer` wasm module, whose start function installs the message handler and
// posts "Ready" to the page. The page starts this worker only when a race is started.
import init from './edgewise_trainer.js';

init().catch((err) => {
  self.postMessage({ Error: `The training worker could not start: ${err}` });
});
