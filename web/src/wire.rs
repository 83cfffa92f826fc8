//! The one encoding of every message between the page and its workers (both directions,
//! all three workers): `serde-wasm-bindgen`, with 64-bit integers as BigInts so seeds
//! survive the trip. The page side ([`crate::channel`]) and the worker side
//! ([`crate::worker_scope`]) both go through here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;

/// `msg` as a JS value for `postMessage`.
///
/// # Errors
/// A message naming the problem when `msg` cannot be encoded.
pub fn encode<T: Serialize>(msg: &T) -> Result<JsValue, String> {
    let serializer =
        serde_wasm_bindgen::Serializer::new().serialize_large_number_types_as_bigints(true);
    msg.serialize(&serializer).map_err(|e| e.to_string())
}

/// A message received with `postMessage`.
///
/// # Errors
/// A message naming the problem when `value` is not a `T`.
pub fn decode<T: DeserializeOwned>(value: JsValue) -> Result<T, String> {
    serde_wasm_bindgen::from_value(value).map_err(|e| e.to_string())
}
