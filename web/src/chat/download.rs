//! Getting the model file into the LLM worker: the bundle's model index, the Cache API
//! copy when a complete one is there, else a download with progress (then cached).
//! wasm32 only (it drives the browser's fetch and Cache API).

use js_sys::Uint8Array;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, DedicatedWorkerGlobalScope, ReadableStreamDefaultReader, Response};

use super::model_index::{GET_MODEL_HINT, MODEL_INDEX, ModelEntry, ModelIndex};
use super::protocol::{FromLlm, Stage};
use crate::worker_scope::post;

/// Cache API store of model files (bump the suffix to drop old entries' format).
const CACHE_NAME: &str = "edgewise-models-v1";
/// Progress messages at most this often, in bytes.
const PROGRESS_STEP: u64 = 1 << 22;

pub(super) fn js_err(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn fetch(scope: &DedicatedWorkerGlobalScope, url: &str) -> Result<Response, String> {
    let response = JsFuture::from(scope.fetch_with_str(url))
        .await
        .map_err(|e| format!("could not fetch {url}: {}", js_err(&e)))?;
    response
        .dyn_into::<Response>()
        .map_err(|_| format!("{url}: not a response"))
}

/// Reads a response body to the end, reporting progress.
async fn read_body(
    scope: &DedicatedWorkerGlobalScope,
    response: &Response,
    stage: Stage,
    total: u64,
) -> Result<Vec<u8>, String> {
    let body = response
        .body()
        .ok_or_else(|| "the model response has no body".to_owned())?;
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "the model body has no default reader".to_owned())?;
    let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut reported = 0u64;
    post(
        scope,
        &FromLlm::Progress {
            stage,
            done: 0,
            total,
        },
    );
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("reading the model failed: {}", js_err(&e)))?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|_| "a model chunk has no value".to_owned())?;
        let array: Uint8Array = value
            .dyn_into()
            .map_err(|_| "a model chunk is not bytes".to_owned())?;
        let start = bytes.len();
        bytes.resize(start + array.length() as usize, 0);
        array.copy_to(&mut bytes[start..]);
        let done = bytes.len() as u64;
        if done - reported >= PROGRESS_STEP {
            reported = done;
            post(scope, &FromLlm::Progress { stage, done, total });
        }
    }
    post(
        scope,
        &FromLlm::Progress {
            stage,
            done: bytes.len() as u64,
            total,
        },
    );
    Ok(bytes)
}

/// The model bytes: from the Cache API when a complete copy is there, else downloaded
/// (and cached for next time). Returns the bytes and whether they came from the cache.
pub(super) async fn model_bytes(
    scope: &DedicatedWorkerGlobalScope,
    entry: &ModelEntry,
) -> Result<(Vec<u8>, bool), String> {
    let url = format!("models/{}", entry.file);
    let cache: Option<Cache> = match scope.caches() {
        Ok(storage) => JsFuture::from(storage.open(CACHE_NAME))
            .await
            .ok()
            .and_then(|c| c.dyn_into().ok()),
        Err(_) => None,
    };
    if let Some(cache) = &cache
        && let Ok(hit) = JsFuture::from(cache.match_with_str(&url)).await
        && let Ok(response) = hit.dyn_into::<Response>()
    {
        let bytes = read_body(scope, &response, Stage::Cache, entry.bytes).await?;
        if bytes.len() as u64 == entry.bytes {
            return Ok((bytes, true));
        }
        // A stale or truncated copy: replace it.
        let _ = JsFuture::from(cache.delete_with_str(&url)).await;
    }
    let response = fetch(scope, &url).await?;
    if !response.ok() {
        return Err(format!(
            "{url}: HTTP {} ({GET_MODEL_HINT})",
            response.status()
        ));
    }
    let bytes = read_body(scope, &response, Stage::Download, entry.bytes).await?;
    if bytes.len() as u64 != entry.bytes {
        return Err(format!(
            "{url} has {} bytes, {MODEL_INDEX} says {}",
            bytes.len(),
            entry.bytes
        ));
    }
    if let Some(cache) = &cache {
        let array = Uint8Array::from(bytes.as_slice());
        if let Ok(copy) = Response::new_with_opt_buffer_source(Some(&array)) {
            // Best effort: a full quota only means downloading again next time.
            let _ = JsFuture::from(cache.put_with_str(&url, &copy)).await;
        }
    }
    Ok((bytes, false))
}

pub(super) async fn model_index(
    scope: &DedicatedWorkerGlobalScope,
) -> Result<Option<ModelEntry>, String> {
    let response = fetch(scope, MODEL_INDEX).await?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!("{MODEL_INDEX}: HTTP {}", response.status()));
    }
    let text = JsFuture::from(response.text().map_err(|e| js_err(&e))?)
        .await
        .map_err(|e| format!("{MODEL_INDEX}: {}", js_err(&e)))?
        .as_string()
        .unwrap_or_default();
    Ok(ModelIndex::parse(&text)?.pick().cloned())
}
