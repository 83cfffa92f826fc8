//! A dedicated worker's end of its channel, alike for the simulation, training and LLM
//! workers: listen for the page's messages, post to the page, read the worker's clock.
//! Messages go through [`crate::wire`], as on the page's side ([`crate::channel`]).
//! Used at run time in wasm only; it compiles natively so the library's tests build.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::wire;

/// The global scope of the running dedicated worker.
///
/// # Errors
/// When this code does not run in a dedicated worker.
pub fn scope() -> Result<DedicatedWorkerGlobalScope, JsValue> {
    js_sys::global().dyn_into().map_err(JsValue::from)
}

/// Posts `msg` to the page. If it cannot be encoded, posts `"encode error: …"` instead
/// so the page reports it as an unreadable message.
pub fn post<T: Serialize>(scope: &DedicatedWorkerGlobalScope, msg: &T) {
    let value =
        wire::encode(msg).unwrap_or_else(|e| JsValue::from_str(&format!("encode error: {e}")));
    let _ = scope.post_message(&value);
}

/// Hands every message from the page to `handle`: the decoded `In`, or a sentence saying
/// what was wrong with it. The handler lives as long as the worker.
pub fn listen<In: DeserializeOwned + 'static>(
    scope: &DedicatedWorkerGlobalScope,
    mut handle: impl FnMut(Result<In, String>) + 'static,
) {
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        handle(wire::decode(event.data()).map_err(|e| format!("the page sent a bad message: {e}")));
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives until the page terminates it: the handler is never dropped.
    on_message.forget();
}

/// Milliseconds from the worker's `performance.now()` (wall clock if it has none).
#[must_use]
pub fn now_ms(scope: &DedicatedWorkerGlobalScope) -> f64 {
    scope
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}
