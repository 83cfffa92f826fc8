//! What every dedicated worker of the app does alike: post a message to the page and read
//! the worker's clock. Used by the simulation, trainer and LLM workers (wasm only at run
//! time; it compiles natively so the library's tests build).

use wasm_bindgen::JsValue;
use web_sys::DedicatedWorkerGlobalScope;

/// Posts `msg` to the page, 64-bit integers as BigInts (seeds survive the trip). If it
/// cannot be encoded, posts `"encode error: …"` instead so the page can report it.
pub fn post<T: serde::Serialize>(scope: &DedicatedWorkerGlobalScope, msg: &T) {
    let serializer =
        serde_wasm_bindgen::Serializer::new().serialize_large_number_types_as_bigints(true);
    let value = msg
        .serialize(&serializer)
        .unwrap_or_else(|e| JsValue::from_str(&format!("encode error: {e}")));
    let _ = scope.post_message(&value);
}

/// Milliseconds from the worker's `performance.now()` (wall clock if it has none).
#[must_use]
pub fn now_ms(scope: &DedicatedWorkerGlobalScope) -> f64 {
    scope
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}
