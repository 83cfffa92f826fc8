//! The few browser services the page uses: the worker, the URL, fetching the shipped
//! policies and downloading a file. Everything fallible returns a message for the page.

use edgewise_web::policies::PolicyId;
use edgewise_web::protocol::{FromWorker, ToWorker};
use gloo::file::{Blob, ObjectUrl};
use gloo::net::http::Request;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlAnchorElement, MessageEvent, Worker, WorkerOptions, WorkerType};

/// The simulation worker (`worker.js` loads the `edgewise_worker` wasm module).
pub struct SimWorker {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl std::fmt::Debug for SimWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimWorker")
    }
}

impl SimWorker {
    /// Start the worker; `on_message` gets every decoded message (or a decoding error).
    ///
    /// # Errors
    /// When the browser refuses to start a module worker.
    pub fn spawn(
        on_message: impl Fn(Result<FromWorker, String>) + 'static,
    ) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("worker.js", &options)
            .map_err(|e| format!("the browser could not start the simulation worker: {e:?}"))?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            on_message(
                serde_wasm_bindgen::from_value::<FromWorker>(event.data())
                    .map_err(|e| format!("unreadable message from the worker: {e}")),
            );
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            _on_message: on_message,
        })
    }

    /// Send a command.
    pub fn send(&self, msg: &ToWorker) {
        let serializer =
            serde_wasm_bindgen::Serializer::new().serialize_large_number_types_as_bigints(true);
        if let Ok(value) = serde::Serialize::serialize(msg, &serializer) {
            let _ = self.worker.post_message(&value);
        }
    }
}

impl Drop for SimWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

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
pub async fn fetch_policies() -> (Vec<(PolicyId, String)>, Vec<String>) {
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
    for id in PolicyId::ALL {
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
