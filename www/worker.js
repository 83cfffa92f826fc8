// The simulation's dedicated web worker: loads the `edgewise-worker` wasm module, whose
// start function installs the message handler and posts "Ready" to the page.
import init from './edgewise_worker.js';

init().catch((err) => {
  self.postMessage({ Error: `The simulation worker could not start: ${err}` });
});
