//! Getting the model file into the LLM worker: the bundle's model index, the Cache API
//! copy when it passes the index's size and SHA-256, else a download with progress, checked
//! the same way and retried when interrupted or corrupt (then cached).
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
/// Downloads tried before the worker gives up on a model file.
const DOWNLOAD_ATTEMPTS: u32 = 3;

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

/// The model bytes: from the Cache API when a copy there passes [`ModelEntry::verify`],
/// else downloaded (up to [`DOWNLOAD_ATTEMPTS`] times, each checked the same way) and
/// cached for next time. Returns the bytes and whether they came from the cache. What went
/// wrong on the way is told to the page as [`FromLlm::Notice`].
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
        match entry.verify(&bytes) {
            Ok(()) => return Ok((bytes, true)),
            Err(why) => {
                post(
                    scope,
                    &FromLlm::Notice(format!(
                        "the cached copy was unusable ({why}); downloading the model again"
                    )),
                );
                let _ = JsFuture::from(cache.delete_with_str(&url)).await;
            }
        }
    }
    let mut attempt = 1;
    let bytes = loop {
        let why = match download(scope, &url, entry).await {
            Ok(bytes) => break bytes,
            Err(Fatal(why)) => return Err(why),
            Err(Retry(why)) => why,
        };
        if attempt == DOWNLOAD_ATTEMPTS {
            return Err(format!(
                "the model download failed {DOWNLOAD_ATTEMPTS} times; the last time: {why}. \
                 Reload the page to try again; if it keeps failing, the server's copy is \
                 damaged (rebuild the bundle with `cargo xtask web`)"
            ));
        }
        attempt += 1;
        post(
            scope,
            &FromLlm::Notice(format!(
                "download attempt {} of {DOWNLOAD_ATTEMPTS} failed ({why}); retrying",
                attempt - 1
            )),
        );
    };
    if let Some(cache) = &cache {
        let array = Uint8Array::from(bytes.as_slice());
        if let Ok(copy) = Response::new_with_opt_buffer_source(Some(&array)) {
            // Best effort: a full quota only means downloading again next time.
            let _ = JsFuture::from(cache.put_with_str(&url, &copy)).await;
        }
    }
    Ok((bytes, false))
}

/// Why one download attempt failed.
enum Failure {
    /// Worth another attempt (network error, interrupted or corrupted transfer).
    Retry(String),
    /// Another attempt would fail the same way (the file is not on the server).
    Fatal(String),
}
use Failure::{Fatal, Retry};

/// One download of `url`, checked against `entry`.
async fn download(
    scope: &DedicatedWorkerGlobalScope,
    url: &str,
    entry: &ModelEntry,
) -> Result<Vec<u8>, Failure> {
    let response = fetch(scope, url).await.map_err(Retry)?;
    match response.status() {
        200..=299 => {}
        404 => {
            return Err(Fatal(format!("{url}: HTTP 404 ({GET_MODEL_HINT})")));
        }
        status => return Err(Retry(format!("{url}: HTTP {status}"))),
    }
    let bytes = read_body(scope, &response, Stage::Download, entry.bytes)
        .await
        .map_err(Retry)?;
    entry.verify(&bytes).map_err(Retry)?;
    Ok(bytes)
}

pub(super) async fn model_index(
    scope: &DedicatedWorkerGlobalScope,
    chosen: Option<&str>,
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
    Ok(ModelIndex::parse(&text)?.choose(chosen)?.cloned())
}
