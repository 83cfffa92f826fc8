//! The few browser services the page uses besides its workers ([`crate::channel`]): the
//! URL, fetching the shipped policy files and the model list, the clipboard, downloading a
//! file and scrolling. Everything fallible returns a message for the page.

use gloo::file::{Blob, ObjectUrl};
use gloo::net::http::Request;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::HtmlAnchorElement;

use crate::chat::model_index::{MODEL_INDEX, ModelIndex};
use crate::entrants::Entrant;

/// The query string of the page (`?…`, or empty).
pub fn location_query() -> String {
    gloo::utils::window()
        .location()
        .search()
        .unwrap_or_default()
}

/// Replace the page's URL query without reloading or adding a history entry.
pub fn set_location_query(query: &str) {
    if let Ok(history) = gloo::utils::window().history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(query));
    }
}

/// The full URL of the page (to share).
pub fn location_href() -> String {
    gloo::utils::window().location().href().unwrap_or_default()
}

/// Copy text to the clipboard (best effort).
pub fn copy_to_clipboard(text: &str) {
    let _ = gloo::utils::window()
        .navigator()
        .clipboard()
        .write_text(text);
}

/// Fetch the shipped policy files listed in `policies/index.json` (written by
/// `cargo xtask web`; only listed files are requested, so a policy that is not shipped
/// causes no failed request). Returns the texts found and notes on what went wrong.
pub async fn fetch_policies() -> (Vec<(Entrant, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let listed: Vec<String> = match Request::get("policies/index.json").send().await {
        Ok(r) if r.ok() => r.json().await.unwrap_or_else(|e| {
            notes.push(format!(
                "policies/index.json is not a list of file names: {e}"
            ));
            Vec::new()
        }),
        Ok(r) => {
            notes.push(format!("policies/index.json: HTTP {}", r.status()));
            Vec::new()
        }
        Err(e) => {
            notes.push(format!("could not read policies/index.json: {e}"));
            Vec::new()
        }
    };
    for id in Entrant::ALL {
        let Some(path) = id.file() else { continue };
        let name = path.rsplit('/').next().unwrap_or(path);
        if !listed.iter().any(|l| l == name) {
            continue;
        }
        match Request::get(path).send().await {
            Ok(r) if r.ok() => match r.text().await {
                Ok(text) => found.push((id, text)),
                Err(e) => notes.push(format!("{path}: {e}")),
            },
            Ok(r) => notes.push(format!("{path}: HTTP {}", r.status())),
            Err(e) => notes.push(format!("{path}: {e}")),
        }
    }
    (found, notes)
}

/// Fetch the bundle's model list (`models/index.json`, a few hundred bytes) so the chat
/// panel can offer the models with their sizes before anything large is downloaded. A
/// bundle without one (HTTP 404) lists no model.
///
/// # Errors
/// A sentence when the list cannot be fetched or parsed.
pub async fn fetch_model_index() -> Result<ModelIndex, String> {
    let response = Request::get(MODEL_INDEX)
        .send()
        .await
        .map_err(|e| format!("could not read {MODEL_INDEX}: {e}"))?;
    match response.status() {
        404 => Ok(ModelIndex::default()),
        _ if !response.ok() => Err(format!("{MODEL_INDEX}: HTTP {}", response.status())),
        _ => {
            let text = response
                .text()
                .await
                .map_err(|e| format!("{MODEL_INDEX}: {e}"))?;
            ModelIndex::parse(&text)
        }
    }
}

/// Offer `text` as a file download named `name`.
pub fn download(name: &str, mime: &str, text: &str) {
    let blob = Blob::new_with_options(text, Some(mime));
    let url = ObjectUrl::from(blob);
    let document = gloo::utils::document();
    if let Ok(a) = document.create_element("a")
        && let Ok(a) = a.dyn_into::<HtmlAnchorElement>()
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    // Revoke the object URL once the download has started.
    gloo::timers::callback::Timeout::new(10_000, move || drop(url)).forget();
}

/// Scroll an element into view (for the tour).
pub fn scroll_to(id: &str) {
    if let Some(el) = gloo::utils::document().get_element_by_id(id) {
        el.scroll_into_view_with_bool(false);
    }
}
